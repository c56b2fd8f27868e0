//! Snapshots: a point-in-time image of the inventory, written without
//! stopping traffic, that recovery loads before applying the journal after
//! it.
//!
//! How it stays exact without a global pause (see docs/DURABILITY.md):
//! `covers` is a sequence number below which every step had already made
//! its change visible when the image was begun (the journal's written
//! watermark: a step hands its record over only after its change is
//! visible). Items are then read one by one, each at its own instant,
//! and may include later steps; recovery applies every record after
//! `covers`, and post-values make that exact. Each reservation shard is
//! copied under its lock together with `cuts[shard]`, the next sequence
//! number at that moment: the shard holds exactly its changes numbered
//! below the cut, so recovery applies a record's reservation changes only
//! from the cut of the shard (as this process placed ids: `id_key`) up.
//!
//! Campaigns: a campaign's counters move with reservations of every
//! shard (counting in under one shard's lock, giving back under another's)
//! and with definitions and ends (under the campaign write lock), so once a
//! campaign has been defined the image reads every shard and the
//! campaigns at **one** cut: it takes every shard lock, then the campaign
//! write lock, and reads the counters and all shards there (every shard's
//! cut is that one number). Nothing is then between counting and numbering
//! (a campaign reserve holds its shard lock throughout) nor between a
//! finish and its give-back (settled under the shard lock), so the
//! counters are exactly those of the journal prefix below the cut; the
//! records from the cut up count in and give back as they did live. This
//! pauses reservations for the copy of the shards; an inventory that never
//! defined a campaign keeps the per-shard cuts (checked after the shards
//! are read: a definition sets the flag before taking its number, so if
//! the flag is still clear every campaign record is above every cut).
//!
//! Format, version 1 (integers are varints unless said otherwise):
//!
//! ```text
//! file    = "OMNISNAP" version:u32le section* end
//! section = tag:u8 len:u64le body          (tags >= 128 may be skipped by
//!                                          readers that do not know them)
//! 1 head  = covers now_ms id_key shards cut*shards
//! 2 items = count (sku store on_hand reserved safety)*
//! 3 resv  = count (id kind state expires_at finished_at n line* parts)*
//!           kind = channel | overdue<<1; parts = count part*
//! 4 points = count (sku store reorder_point)*   (optional)
//! 5 campaigns = version:u8(1) cut count (campaign sku store quota per_customer
//!           n (customer count)*)*              (optional: campaigns ever defined)
//!           and in section 3, kind |= 4 for a campaign reservation, then
//!           after its parts: campaign customer current:u8
//! end     = 0 checksum:u64le               (over every byte before it)
//! ```

use super::record::{put_varint, DecodeError, Reader};
use crate::engine::{Inventory, Joins, Remembered};
use crate::reservations::id_placement::IdHasher;
use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Line, ReservationId, ReservationState, Sku, StoreId,
};

const MAGIC: &[u8; 8] = b"OMNISNAP";
const VERSION: u32 = 1;
/// The version byte of the campaign section (5).
const CAMPAIGNS_VERSION: u8 = 1;

/// A 64-bit checksum of `bytes` (8 bytes a step, a multiply-xor mix):
/// catches torn and damaged files, not tampering (the journal's hash
/// chain is the audit trail).
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let mut hash = 0x9E37_79B9_7F4A_7C15u64 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        hash = (hash ^ word).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        hash ^= hash >> 32;
    }
    for &byte in chunks.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        hash ^= hash >> 32;
    }
    hash
}

fn section(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
}

fn state_code(state: ReservationState) -> u8 {
    match state {
        ReservationState::Pending => 0,
        ReservationState::Committed => 1,
        ReservationState::Released => 2,
        ReservationState::Expired => 3,
    }
}

/// What a loaded snapshot says about the records to apply after it.
#[derive(Clone, Debug)]
pub(crate) struct Cover {
    /// Records numbered up to here are in the image.
    pub(crate) covers: u64,
    /// Each reservation shard's cut, and how the writer placed ids.
    cuts: Vec<u64>,
    hasher: IdHasher,
    /// Campaign records numbered from here up are newer than the image.
    campaign_cut: u64,
}

impl Cover {
    /// Nothing covered: every record applies.
    pub(crate) fn none() -> Self {
        Cover {
            covers: 0,
            cuts: Vec::new(),
            hasher: IdHasher::with_key(0),
            campaign_cut: 0,
        }
    }

    /// Whether record `seq`'s campaign definitions and ends are newer
    /// than the image.
    pub(crate) fn campaigns_fresh(&self, seq: u64) -> bool {
        seq >= self.campaign_cut
    }

    /// Whether record `seq`'s changes of reservation `id` are newer than
    /// the image.
    pub(crate) fn fresh(&self, seq: u64, id: ReservationId) -> bool {
        if self.cuts.is_empty() {
            return true;
        }
        let shard = self.hasher.shard_of(id.0) % self.cuts.len();
        seq >= self.cuts[shard]
    }
}

/// The image of `inventory`, covering every record up to `covers` (see
/// the module doc for what the caller must make sure of).
pub(crate) fn image(inventory: &Inventory, covers: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    // Reservations first: each shard's cut must be read before the items
    // (a cell read later may only be newer).
    let shards = inventory.shard_count();
    let mut cuts = Vec::with_capacity(shards);
    let mut body = Vec::new();
    let mut count = 0u64;
    let mut write = |r: Remembered<'_>| {
        count += 1;
        let record = r.record;
        put_varint(&mut body, record.id);
        let channel = u8::from(record.channel == Channel::InStore);
        body.push(
            channel
                | (u8::from(record.overdue_at_once) << 1)
                | (u8::from(r.campaign.is_some()) << 2),
        );
        body.push(state_code(record.state));
        put_varint(&mut body, record.expires_at);
        put_varint(&mut body, r.finished_at);
        put_varint(&mut body, r.lines.len() as u64);
        for line in &r.lines {
            put_varint(&mut body, line.sku.0);
            put_varint(&mut body, line.store.0);
            put_varint(&mut body, u64::from(line.qty));
        }
        let parts = r.parts.unwrap_or(&[]);
        put_varint(&mut body, parts.len() as u64);
        for &part in parts {
            put_varint(&mut body, u64::from(part));
        }
        if let Some((campaign, customer, current)) = r.campaign {
            put_varint(&mut body, campaign.0);
            put_varint(&mut body, customer.0);
            body.push(u8::from(current));
        }
    };
    let mut campaigns = None;
    if inventory.campaigns_seen() {
        let mut section = Vec::new();
        let mut count = 0u64;
        let cut = inventory.snapshot_at_one_cut(&mut write, |usage, customers| {
            count += 1;
            put_varint(&mut section, usage.campaign.0);
            put_varint(&mut section, usage.item.sku.0);
            put_varint(&mut section, usage.item.store.0);
            put_varint(&mut section, u64::from(usage.quota));
            put_varint(&mut section, u64::from(usage.per_customer));
            put_varint(&mut section, customers.len() as u64);
            for &(customer, units) in customers {
                put_varint(&mut section, customer.0);
                put_varint(&mut section, u64::from(units));
            }
        });
        cuts.resize(shards, cut);
        let mut head = vec![CAMPAIGNS_VERSION];
        put_varint(&mut head, cut);
        put_varint(&mut head, count);
        head.extend_from_slice(&section);
        campaigns = Some(head);
    } else {
        for n in 0..shards {
            cuts.push(inventory.snapshot_shard(n, &mut write));
        }
        if inventory.campaigns_seen() {
            // A campaign was defined during the pass: read again at one cut.
            return image(inventory, covers);
        }
    }
    let mut reservations = Vec::with_capacity(body.len() + 10);
    put_varint(&mut reservations, count);
    reservations.extend_from_slice(&body);
    drop(body);

    let mut items = Vec::new();
    let mut count = 0u64;
    inventory.snapshot_items(|key, (on_hand, reserved, safety)| {
        count += 1;
        put_varint(&mut items, key.sku.0);
        put_varint(&mut items, key.store.0);
        put_varint(&mut items, u64::from(on_hand));
        put_varint(&mut items, u64::from(reserved));
        put_varint(&mut items, u64::from(safety));
    });
    let mut counted = Vec::with_capacity(items.len() + 10);
    put_varint(&mut counted, count);
    counted.extend_from_slice(&items);
    drop(items);

    let mut head = Vec::new();
    put_varint(&mut head, covers);
    put_varint(&mut head, inventory.now_ms());
    put_varint(&mut head, inventory.id_hasher().key());
    put_varint(&mut head, cuts.len() as u64);
    for cut in &cuts {
        put_varint(&mut head, *cut);
    }
    section(&mut out, 1, &head);
    section(&mut out, 2, &counted);
    section(&mut out, 3, &reservations);
    let mut points = Vec::new();
    let mut count = 0u64;
    inventory.snapshot_reorder_points(|key, point| {
        count += 1;
        put_varint(&mut points, key.sku.0);
        put_varint(&mut points, key.store.0);
        put_varint(&mut points, u64::from(point));
    });
    let mut counted = Vec::with_capacity(points.len() + 10);
    put_varint(&mut counted, count);
    counted.extend_from_slice(&points);
    section(&mut out, 4, &counted);
    if let Some(campaigns) = campaigns {
        section(&mut out, 5, &campaigns);
    }
    out.push(0);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Checks a snapshot file's frame (magic, version, checksum) and returns
/// its sections, `(tag, body)`.
fn sections(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, DecodeError> {
    let bad = |offset: usize, reason: &'static str| DecodeError { offset, reason };
    if bytes.len() < 8 + 4 + 1 + 8 || &bytes[..8] != MAGIC {
        return Err(bad(0, "not a snapshot"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or([0; 4]));
    if version != VERSION {
        return Err(bad(8, "unknown snapshot version"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 8);
    if checksum(content) != u64::from_le_bytes(sum.try_into().unwrap_or([0; 8])) {
        return Err(bad(content.len(), "checksum mismatch (torn or damaged)"));
    }
    let mut at = 12;
    let mut found = Vec::new();
    loop {
        let Some(&tag) = content.get(at) else {
            return Err(bad(at, "no end section"));
        };
        at += 1;
        if tag == 0 {
            return if at == content.len() {
                Ok(found)
            } else {
                Err(bad(at, "bytes after the end section"))
            };
        }
        let len = content
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or(bad(at, "ends early"))?;
        at += 8;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .filter(|&end| end <= content.len())
            .ok_or(bad(at, "a section past the end"))?;
        found.push((tag, &content[at..end]));
        at = end;
    }
}

/// The id placement key of a snapshot (checked whole first).
pub(crate) fn id_key(bytes: &[u8]) -> Result<u64, DecodeError> {
    let found = sections(bytes)?;
    let Some((_, head)) = found.iter().find(|(tag, _)| *tag == 1) else {
        return Err(DecodeError {
            offset: 0,
            reason: "a section is missing",
        });
    };
    let mut r = Reader::new(head);
    r.varint()?;
    r.varint()?;
    r.varint()
}

/// Loads a snapshot into `inventory` (fresh, unshared); returns what it
/// covers.
pub(crate) fn load(inventory: &Inventory, bytes: &[u8]) -> Result<Cover, DecodeError> {
    let found = sections(bytes)?;
    let body = |tag: u8| -> Result<&[u8], DecodeError> {
        found
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, body)| *body)
            .ok_or(DecodeError {
                offset: 0,
                reason: "a section is missing",
            })
    };
    if let Some((tag, _)) = found
        .iter()
        .find(|(tag, _)| !(1..=5).contains(tag) && *tag < 128)
    {
        let _ = tag;
        return Err(DecodeError {
            offset: 0,
            reason: "a section this version does not know",
        });
    }
    let mut r = Reader::new(body(1)?);
    let covers = r.varint()?;
    let now_ms = r.varint()?;
    let hasher = IdHasher::with_key(r.varint()?);
    let n = r.len(1 << 16)?;
    let mut cuts = Vec::with_capacity(n);
    for _ in 0..n {
        cuts.push(r.varint()?);
    }
    inventory.restore_clock(now_ms);

    let mut r = Reader::new(body(2)?);
    let count = r.varint()?;
    inventory.restore_reserve(usize::try_from(count).unwrap_or(0).min(1 << 32));
    // Items are restored AHEAD behind their decoding, whose table entries
    // are prefetched meanwhile: their cache misses overlap.
    const AHEAD: usize = 16;
    let mut ring = [(ItemKey::new(Sku(0), StoreId(0)), 0u32, 0u32, 0u32); AHEAD];
    let restore = |(key, on_hand, reserved, safety): (ItemKey, u32, u32, u32)| {
        inventory.restore_item(key, on_hand, reserved);
        if safety != 0 {
            inventory.restore_safety(key, safety);
        }
    };
    for n in 0..count {
        let key = ItemKey::new(Sku(r.varint()?), StoreId(r.varint()?));
        let (on_hand, reserved, safety) = (r.u32()?, r.u32()?, r.u32()?);
        if reserved > on_hand {
            return r.fail("a cell with more reserved than on hand");
        }
        inventory.restore_prefetch(key);
        let slot = (n % AHEAD as u64) as usize;
        if n >= AHEAD as u64 {
            restore(ring[slot]);
        }
        ring[slot] = (key, on_hand, reserved, safety);
    }
    for n in count.saturating_sub(AHEAD as u64)..count {
        restore(ring[(n % AHEAD as u64) as usize]);
    }

    let mut campaign_cut = 0;
    if let Some((_, campaigns)) = found.iter().find(|(tag, _)| *tag == 5) {
        let mut r = Reader::new(campaigns);
        if r.byte()? != CAMPAIGNS_VERSION {
            return r.fail("unknown campaign section version");
        }
        campaign_cut = r.varint()?;
        if cuts.iter().any(|&cut| cut != campaign_cut) {
            return r.fail("campaigns read at another cut than the shards");
        }
        let count = r.varint()?;
        for _ in 0..count {
            let campaign = CampaignId(r.varint()?);
            let item = ItemKey::new(Sku(r.varint()?), StoreId(r.varint()?));
            let (quota, per_customer) = (r.u32()?, r.u32()?);
            if inventory
                .restore_campaign_defined(campaign, item, quota, per_customer)
                .is_err()
            {
                return r.fail("a campaign that does not fit the table");
            }
            let n = r.varint()?;
            for _ in 0..n {
                let customer = CustomerId(r.varint()?);
                let units = r.u32()?;
                if inventory
                    .restore_campaign_count(campaign, item, customer, units)
                    .is_err()
                {
                    return r.fail("a campaign count that does not fit");
                }
            }
        }
    }

    let mut r = Reader::new(body(3)?);
    let count = r.varint()?;
    for _ in 0..count {
        let id = ReservationId(r.varint()?);
        let kind = r.byte()?;
        let channel = if kind & 1 == 0 {
            Channel::Online
        } else {
            Channel::InStore
        };
        let state = match r.byte()? {
            0 => ReservationState::Pending,
            1 => ReservationState::Committed,
            2 => ReservationState::Released,
            3 => ReservationState::Expired,
            _ => return r.fail("unknown state"),
        };
        let deadline = (r.varint()?, kind & 2 != 0);
        let finished_at = r.varint()?;
        let n = r.len(crate::limits::MAX_LINES)?;
        if n == 0 {
            return r.fail("a reservation without lines");
        }
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            let (sku, store) = (Sku(r.varint()?), StoreId(r.varint()?));
            lines.push(Line::new(sku, store, r.u32()?));
        }
        let n = r.len(crate::limits::MAX_LINES)?;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            parts.push(r.u32()?);
        }
        let campaign = if kind & 4 != 0 {
            let (campaign, customer) = (CampaignId(r.varint()?), CustomerId(r.varint()?));
            let joins = match r.byte()? {
                0 => Joins::Dead,
                1 => Joins::Counted,
                _ => return r.fail("not a flag"),
            };
            Some((campaign, customer, joins))
        } else {
            None
        };
        if inventory
            .restore_reserved(id, channel, &lines, deadline, campaign)
            .is_err()
        {
            return r.fail("a reservation twice");
        }
        if state != ReservationState::Pending
            && inventory
                .restore_finished(id, state, finished_at, &parts, false)
                .is_err()
        {
            return r.fail("a terminal reservation that does not fit");
        }
    }
    if let Some((_, points)) = found.iter().find(|(tag, _)| *tag == 4) {
        let mut r = Reader::new(points);
        let count = r.varint()?;
        for _ in 0..count {
            let key = ItemKey::new(Sku(r.varint()?), StoreId(r.varint()?));
            inventory.restore_reorder_point(key, r.u32()?);
        }
    }
    Ok(Cover {
        covers,
        cuts,
        hasher,
        campaign_cut,
    })
}

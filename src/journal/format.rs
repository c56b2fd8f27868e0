//! The on-disk format: segment file names, the segment header, the record
//! frame and the hash chain. Pure functions over bytes; no I/O.
//!
//! ```text
//! segment file  DIR/<first seq, 20 decimal digits>.journal
//!   header (48 bytes, little-endian)
//!     magic "OMNIJRNL" | version u32 = 1 | header length u32 = 48
//!     first seq u64 | chain hash entering the segment [16]
//!     flags u32 = 0 | CRC32C of the 44 bytes before it u32
//!   records, back to back, each
//!     payload length u32 | CRC32C u32 | seq u64 | chain hash [16] | payload
//! ```
//!
//! Zeros from a record boundary to the end of a segment are no record:
//! space the writer zero-filled ahead in `Durability::Sync` (a record
//! never starts with a zero length, CRC and seq).
//!
//! A record's CRC32C covers every byte of the record but the CRC field
//! itself (the length, seq, chain hash and payload), so a torn or flipped
//! byte anywhere is caught. Its chain hash is the first 16 bytes of
//! SHA-256(previous chain hash ‖ seq as u64 little-endian ‖ payload); the
//! first record of the journal chains from 16 zero bytes, and each segment's
//! header carries the hash entering it, so the chain stays checkable from
//! the first record kept after older segments are deleted.

use sha2::{Digest, Sha256};

/// The first 8 bytes of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"OMNIJRNL";
/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Bytes of a segment header.
pub(crate) const HEADER_LEN: usize = 48;
/// Bytes of a record's frame before its payload.
pub(crate) const FRAME_LEN: usize = 32;
/// The longest payload a record may carry (1 GiB).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// The chain hash before the first record.
pub(crate) const ZERO_CHAIN: Chain = [0; 16];
/// Segment file name suffix.
pub(crate) const SUFFIX: &str = ".journal";

/// A chain hash (SHA-256 truncated to 16 bytes).
pub(crate) type Chain = [u8; 16];

/// The file name of the segment whose first record is `first_seq`.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The first seq a segment file name carries, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment's header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) first_seq: u64,
    pub(crate) chain: Chain,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        out[24..40].copy_from_slice(&self.chain);
        // 40..44: flags, zero.
        let crc = crc32c::crc32c(&out[0..44]);
        out[44..48].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the header at the start of `bytes`, or says why it is not one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, &'static str> {
        if bytes.len() < HEADER_LEN {
            return Err("segment shorter than its header");
        }
        let crc = u32::from_le_bytes(bytes[44..48].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[0..44]) != crc {
            return Err("segment header CRC mismatch");
        }
        if &bytes[0..8] != MAGIC {
            return Err("not a journal segment (bad magic)");
        }
        if u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) != VERSION {
            return Err("unsupported journal format version");
        }
        if u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) != HEADER_LEN as u32 {
            return Err("unexpected segment header length");
        }
        Ok(Header {
            first_seq: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            chain: bytes[24..40].try_into().expect("16 bytes"),
        })
    }
}

/// The chain hash of a record: SHA-256(previous ‖ seq ‖ payload), first 16 bytes.
pub(crate) fn chain(previous: &Chain, seq: u64, payload: &[u8]) -> Chain {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(seq.to_le_bytes());
    hasher.update(payload);
    let digest = hasher.finalize();
    digest[..16].try_into().expect("16 bytes")
}

/// Appends the frame of one record to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, seq: u64, chain: &Chain, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(chain);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 4]), &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The bytes one record takes on disk.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    FRAME_LEN + payload_len
}

/// A record decoded from a segment's bytes; `payload` is its byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) seq: u64,
    pub(crate) chain: Chain,
    pub(crate) payload: std::ops::Range<usize>,
    /// Offset just past the record.
    pub(crate) end: usize,
}

/// Why the bytes at an offset are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The bytes stop before the record does.
    Short,
    /// The length field is over [`MAX_PAYLOAD`].
    Length,
    /// The CRC does not match.
    Crc,
}

impl Bad {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Bad::Short => "record cut short by the end of the file",
            Bad::Length => "record length over the limit",
            Bad::Crc => "record CRC mismatch",
        }
    }
}

/// Decodes the record starting at `at` in `bytes`.
pub(crate) fn decode_frame(bytes: &[u8], at: usize) -> Result<Frame, Bad> {
    let rest = bytes.get(at..).unwrap_or(&[]);
    if rest.len() < FRAME_LEN {
        return Err(Bad::Short);
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(Bad::Length);
    }
    if rest.len() - FRAME_LEN < len {
        return Err(Bad::Short);
    }
    let stored = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let crc = crc32c::crc32c_append(crc32c::crc32c(&rest[0..4]), &rest[8..FRAME_LEN + len]);
    if crc != stored {
        return Err(Bad::Crc);
    }
    Ok(Frame {
        seq: u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")),
        chain: rest[16..32].try_into().expect("16 bytes"),
        payload: at + FRAME_LEN..at + FRAME_LEN + len,
        end: at + FRAME_LEN + len,
    })
}

/// Whether a valid record with a seq above `below` lies anywhere in
/// `bytes` after `from` (at any byte offset): what tells damage in the
/// middle of a segment (valid records follow) from a torn tail (none do).
pub(crate) fn valid_record_after(bytes: &[u8], from: usize, below: u64) -> bool {
    let mut at = from;
    while at + FRAME_LEN <= bytes.len() {
        // Cheap filters first: a plausible length and seq.
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        let room = bytes.len() - at - FRAME_LEN;
        if len <= room
            && seq > below
            && seq - below <= (bytes.len() - from) as u64 / FRAME_LEN as u64 + 1
            && decode_frame(bytes, at).is_ok()
        {
            return true;
        }
        at += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_every_flipped_bit_is_caught() {
        let mut out = Vec::new();
        let c = chain(&ZERO_CHAIN, 7, b"hello");
        encode_frame(&mut out, 7, &c, b"hello");
        let frame = decode_frame(&out, 0).unwrap();
        assert_eq!(frame.seq, 7);
        assert_eq!(frame.chain, c);
        assert_eq!(&out[frame.payload.clone()], b"hello");
        assert_eq!(frame.end, out.len());
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_frame(&bad, 0).is_err(), "bit {bit}");
        }
        for cut in 0..out.len() {
            assert_eq!(decode_frame(&out[..cut], 0), Err(Bad::Short));
        }
    }

    #[test]
    fn a_header_round_trips_and_names_parse() {
        let header = Header {
            first_seq: 42,
            chain: [9; 16],
        };
        assert_eq!(Header::decode(&header.encode()), Ok(header));
        let mut bad = header.encode();
        bad[20] ^= 1;
        assert!(Header::decode(&bad).is_err());
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("LOCK"), None);
        assert_eq!(parse_segment_name("42.journal"), None);
    }
}

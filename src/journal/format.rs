//! The on-disk format: segment file names, the segment header, the record
//! frame and the hash chain. Pure functions over bytes; no I/O.
//!
//! ```text
//! segment file  DIR/<first seq, 20 decimal digits>.journal
//!   header (64 bytes, little-endian)
//!     magic "OMNIJRNL" | version u32 = 2 | header length u32 = 64
//!     first seq u64 | chain state entering the segment [32]
//!     flags u32 = 0 | CRC32C of the 60 bytes before it u32
//!   records, back to back, each
//!     payload length u32 | CRC32C u32 | seq u64 | chain tag [16] | payload
//! ```
//!
//! Zeros from a record boundary to the end of a segment are no record:
//! space the writer zero-filled ahead in `Durability::Sync` (a record
//! never starts with a zero length, CRC and seq).
//!
//! A record's CRC32C covers every byte of the record but the CRC field
//! itself (the length, seq, chain tag and payload), so a torn or flipped
//! byte anywhere is caught.
//!
//! The hash chain is SHA-256's compression function run over the whole
//! journal: the chain state (SHA-256's eight state words, 32 bytes) starts
//! at SHA-256's initial value before the first record, and each record
//! moves it on by compressing `seq u64 | payload length u32 | payload`,
//! zero-padded to whole 64-byte blocks: one block for a payload of up to
//! 52 bytes, which most records are (a SHA-256 of the previous hash and the
//! record took two). A record's tag is the first 16 bytes of the state
//! after it; each segment's header carries the whole state entering it, so
//! the chain stays checkable from the first record kept after older
//! segments are deleted. The length in each record's first block makes the
//! split into records unambiguous; nothing is secret, so the chain proves
//! what [JOURNAL.md](../../docs/JOURNAL.md) says and no more.

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;

/// The first 8 bytes of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"OMNIJRNL";
/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 2;
/// Bytes of a segment header.
pub(crate) const HEADER_LEN: usize = 64;
/// Bytes of a record's frame before its payload.
pub(crate) const FRAME_LEN: usize = 32;
/// The longest payload a record may carry (1 GiB).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Segment file name suffix.
pub(crate) const SUFFIX: &str = ".journal";

/// A record's chain tag: the first 16 bytes of the chain state after it.
pub(crate) type Tag = [u8; 16];

/// Payload bytes that fit in a record's first chain block, after its seq
/// and length.
const FIRST_BLOCK_PAYLOAD: usize = 64 - 12;

/// The hash chain's state after every record so far (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain([u32; 8]);

impl Chain {
    /// Before the journal's first record: SHA-256's initial state.
    pub(crate) const START: Chain = Chain([
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ]);

    /// The state after record `seq` carrying `payload`.
    pub(crate) fn after(&self, seq: u64, payload: &[u8]) -> Chain {
        let mut state = self.0;
        let mut block = [0u8; 64];
        block[..8].copy_from_slice(&seq.to_le_bytes());
        block[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let (first, rest) = payload.split_at(payload.len().min(FIRST_BLOCK_PAYLOAD));
        block[12..12 + first.len()].copy_from_slice(first);
        compress256(&mut state, &[GenericArray::from(block)]);
        for chunk in rest.chunks(64) {
            let mut block = [0u8; 64];
            block[..chunk.len()].copy_from_slice(chunk);
            compress256(&mut state, &[GenericArray::from(block)]);
        }
        Chain(state)
    }

    /// The tag a record whose chain state is this one carries.
    pub(crate) fn tag(&self) -> Tag {
        self.to_bytes()[..16].try_into().expect("16 bytes")
    }

    /// The state as 32 bytes (each word big-endian, as SHA-256 writes them).
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (out, word) in bytes.chunks_exact_mut(4).zip(self.0) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Chain {
        let mut words = [0u32; 8];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_be_bytes(chunk.try_into().expect("4 bytes"));
        }
        Chain(words)
    }

    /// The state in hex (64 digits).
    pub(crate) fn hex(self) -> String {
        self.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

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
        out[24..56].copy_from_slice(&self.chain.to_bytes());
        // 56..60: flags, zero.
        let crc = crc32c::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the header at the start of `bytes`, or says why it is not one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, &'static str> {
        if bytes.len() < HEADER_LEN {
            return Err("segment shorter than its header");
        }
        let crc = u32::from_le_bytes(bytes[60..64].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[0..60]) != crc {
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
            chain: Chain::from_bytes(bytes[24..56].try_into().expect("32 bytes")),
        })
    }
}

/// Appends the frame of one record to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, seq: u64, tag: &Tag, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(tag);
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
    pub(crate) tag: Tag,
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
        tag: rest[16..32].try_into().expect("16 bytes"),
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
        let tag = Chain::START.after(7, b"hello").tag();
        encode_frame(&mut out, 7, &tag, b"hello");
        let frame = decode_frame(&out, 0).unwrap();
        assert_eq!(frame.seq, 7);
        assert_eq!(frame.tag, tag);
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
            chain: Chain::from_bytes(&[9; 32]),
        };
        assert_eq!(Header::decode(&header.encode()), Ok(header));
        let mut bad = header.encode();
        bad[20] ^= 1;
        assert!(Header::decode(&bad).is_err());
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("LOCK"), None);
        assert_eq!(parse_segment_name("42.journal"), None);
    }

    #[test]
    fn the_chain_is_sha256_compression_over_whole_blocks_and_covers_every_byte() {
        // With no record, the state is SHA-256's initial value: the digest
        // of "abc" is its compression of the one padded block.
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut state = Chain::START.0;
        compress256(&mut state, &[GenericArray::from(block)]);
        assert_eq!(
            Chain(state).hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let start = Chain::START;
        for len in [0, 1, 52, 53, 116, 117, 300] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let after = start.after(9, &payload);
            assert_ne!(after, start.after(10, &payload), "the seq counts");
            for at in 0..len {
                let mut changed = payload.clone();
                changed[at] ^= 1;
                assert_ne!(after.tag(), start.after(9, &changed).tag(), "byte {at}");
            }
            let mut longer = payload.clone();
            longer.push(0);
            assert_ne!(after, start.after(9, &longer), "a zero byte more counts");
            assert_eq!(Chain::from_bytes(&after.to_bytes()), after);
        }
        assert_ne!(
            start.after(1, b"a").after(2, b"b"),
            start.after(2, b"b").after(1, b"a")
        );
    }
}

//! Reading segment files: listing a directory's segments, walking one
//! segment's records with the tail rule, and the readers built on that
//! walk ([`read`], [`verify`], and the scan of the last segment at open).
//!
//! The tail rule: bytes that are not a valid header or record are a torn
//! tail only in the last segment and only when no valid record (with a
//! higher seq) follows them anywhere in that segment; everything else is
//! corruption, reported with its file and offset, and nothing at or after
//! it is returned.

use super::error::JournalError;
use super::format::{self, Chain, Frame, Header, Tag, HEADER_LEN};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// A segment file of a journal directory.
#[derive(Clone, Debug)]
pub(crate) struct SegmentFile {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
}

/// The segments of `dir`, in seq order. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, JournalError> {
    let entries = fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(first_seq) = name.to_str().and_then(format::parse_segment_name) {
            segments.push(SegmentFile {
                first_seq,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// The folder of a journal directory that keeps archived segments.
pub(crate) const ARCHIVE: &str = "archive";

/// The archived segments of `dir` (none without an archive), then its live
/// ones, in seq order. A segment found in both places (copied by hand) is
/// read from the live directory, which the journal writes.
pub(crate) fn list_history(dir: &Path) -> Result<Vec<SegmentFile>, JournalError> {
    let live = list_segments(dir)?;
    let archive = dir.join(ARCHIVE);
    let mut all = if archive.is_dir() {
        list_segments(&archive)?
    } else {
        Vec::new()
    };
    if let Some(first_live) = live.first() {
        all.retain(|segment| segment.first_seq < first_live.first_seq);
    }
    all.extend(live);
    Ok(all)
}

/// A torn tail found at the end of the last segment: cut off by
/// [`Journal::open`](super::Journal::open), skipped by [`read`] and
/// [`verify`] (which never write).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailReport {
    /// The segment file.
    pub file: PathBuf,
    /// Where the tail starts (0: the segment's header itself is torn, and
    /// `open` removes the file).
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// What the bytes at `offset` are not.
    pub reason: String,
}

/// One step of a walk through a segment.
pub(crate) enum Step {
    Record(Frame),
    End,
    Tail(TailReport),
    Corrupt(JournalError),
}

/// A walk through one segment's records, held in memory.
pub(crate) struct Cursor {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
    pub(crate) pos: usize,
    is_last: bool,
    /// Treat any bad record of the last segment as its tail (open's
    /// `salvage_last_segment`).
    pub(crate) salvage: bool,
    /// The seq the next record must have.
    pub(crate) expected: u64,
    /// The chain tag of the last record walked (at first, the tag of the
    /// state the header says enters the segment).
    pub(crate) tag: Tag,
    /// When the walk recomputes the chain: the state after the last
    /// record walked (the header's at first).
    pub(crate) chain: Option<Chain>,
}

/// Where the previous segment's walk ended: the seq the next segment must
/// start at, the last tag, and the chain state if it was recomputed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Continues {
    pub(crate) next_seq: u64,
    pub(crate) tag: Tag,
    pub(crate) chain: Option<Chain>,
}

/// How a segment starts.
pub(crate) enum Start {
    Cursor(Cursor),
    Tail(TailReport),
}

impl Cursor {
    /// Where this walk ended (so far), for the next segment's header.
    fn continues(&self) -> Continues {
        Continues {
            next_seq: self.expected,
            tag: self.tag,
            chain: self.chain,
        }
    }

    /// Reads `segment` and checks its header; `continues` is where the
    /// previous segment ended, when it was read. With `hash`, the walk
    /// recomputes the chain state from the header's (see
    /// [`Cursor::chain`]).
    pub(crate) fn start(
        segment: &SegmentFile,
        is_last: bool,
        continues: Option<Continues>,
        hash: bool,
    ) -> Result<Start, JournalError> {
        let bytes = fs::read(&segment.path).map_err(|e| JournalError::io(&segment.path, e))?;
        Self::start_with(segment, bytes, is_last, continues, hash)
    }

    pub(crate) fn start_with(
        segment: &SegmentFile,
        bytes: Vec<u8>,
        is_last: bool,
        continues: Option<Continues>,
        hash: bool,
    ) -> Result<Start, JournalError> {
        let path = &segment.path;
        let header = match Header::decode(&bytes) {
            Ok(header) => header,
            Err(reason) => {
                let below = segment.first_seq.saturating_sub(1);
                if is_last && !format::valid_record_after(&bytes, 0, below) {
                    return Ok(Start::Tail(TailReport {
                        file: path.clone(),
                        offset: 0,
                        bytes: bytes.len() as u64,
                        reason: reason.to_string(),
                    }));
                }
                return Err(JournalError::corrupt(path, 0, reason));
            }
        };
        if header.first_seq != segment.first_seq {
            return Err(JournalError::corrupt(
                path,
                0,
                format!(
                    "header says the segment starts at seq {}, its name says {}",
                    header.first_seq, segment.first_seq
                ),
            ));
        }
        if let Some(previous) = continues {
            let seq = previous.next_seq;
            if header.first_seq != seq {
                return Err(JournalError::corrupt(
                    path,
                    0,
                    format!(
                        "segment starts at seq {}, the previous one ended before {seq}",
                        header.first_seq
                    ),
                ));
            }
            // The whole state where the previous walk recomputed it: a
            // header whose state only shares the last tag cannot restart
            // the chain.
            let continued = match previous.chain {
                Some(chain) => header.chain == chain,
                None => header.chain.tag() == previous.tag,
            };
            if !continued {
                return Err(JournalError::corrupt(
                    path,
                    0,
                    "the chain state entering the segment is not the previous segment's last",
                ));
            }
        }
        Ok(Start::Cursor(Cursor {
            path: path.clone(),
            bytes,
            pos: HEADER_LEN,
            is_last,
            salvage: false,
            expected: header.first_seq,
            tag: header.chain.tag(),
            chain: hash.then_some(header.chain),
        }))
    }

    /// The next record, the end, a torn tail or corruption.
    pub(crate) fn step(&mut self) -> Step {
        // Zeros from a record boundary to the end of the file are space the
        // writer filled ahead (no record starts with a zero seq and CRC).
        if self.bytes[self.pos..].iter().all(|&b| b == 0) {
            return Step::End;
        }
        match format::decode_frame(&self.bytes, self.pos) {
            Ok(frame) => {
                if frame.seq != self.expected {
                    return Step::Corrupt(JournalError::corrupt(
                        &self.path,
                        self.pos as u64,
                        format!(
                            "record has seq {}, {} was expected",
                            frame.seq, self.expected
                        ),
                    ));
                }
                self.expected += 1;
                self.tag = frame.tag;
                if let Some(chain) = &mut self.chain {
                    *chain = chain.after(frame.seq, &self.bytes[frame.payload.clone()]);
                }
                self.pos = frame.end;
                Step::Record(frame)
            }
            Err(bad) => {
                let below = self.expected - 1;
                let tail =
                    self.salvage || !format::valid_record_after(&self.bytes, self.pos + 1, below);
                if self.is_last && tail {
                    Step::Tail(TailReport {
                        file: self.path.clone(),
                        offset: self.pos as u64,
                        bytes: (self.bytes.len() - self.pos) as u64,
                        reason: bad.reason().to_string(),
                    })
                } else {
                    Step::Corrupt(JournalError::corrupt(
                        &self.path,
                        self.pos as u64,
                        bad.reason(),
                    ))
                }
            }
        }
    }
}

/// Reads the records of `dir` with a seq above `after`, in seq order,
/// checking each record's CRC, the seqs' density and the segments'
/// continuity (not the hash chain: that is [`verify`]). Read-only: a torn
/// tail is skipped, not truncated, and reported by [`Records::tail`].
///
/// The directory may be open by a [`Journal`](super::Journal) meanwhile
/// (a record being written reads as a torn tail). Segments are read one at
/// a time into memory.
///
/// Errors: the directory cannot be listed; records after `after` were
/// deleted ([`JournalError::Missing`]). Corruption is an `Err` item of the
/// iterator, which then ends: nothing at or after it is returned.
///
/// ```
/// # fn main() -> Result<(), omnistock::journal::JournalError> {
/// use omnistock::journal::{read, Journal, JournalOptions};
/// let dir = std::env::temp_dir().join(format!("omnistock-doc-read-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let (journal, _) = Journal::open(&dir, JournalOptions::default())?;
/// journal.append(1, b"first".to_vec());
/// journal.append(2, b"second".to_vec());
/// journal.wait_durable(2)?;
/// drop(journal);
/// let records: Vec<(u64, Vec<u8>)> = read(&dir, 1)?.collect::<Result<_, _>>()?;
/// assert_eq!(records, vec![(2, b"second".to_vec())]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub fn read(dir: &Path, after: u64) -> Result<Records, JournalError> {
    records_after(list_segments(dir)?, after)
}

/// Every record the directory keeps, oldest first: its archive
/// (`DIR/archive`, where [`JournalOptions::archive`] moves the segments a
/// snapshot covers) and then its live segments, read as one journal whose
/// chain and seqs continue from one file to the next. Without an archive,
/// the records since the oldest live segment. What
/// `Inventory::history` reads.
///
/// Errors: the directory cannot be listed. Corruption, and a gap between
/// two files (an archived segment deleted from the middle), are an `Err`
/// item of the iterator, which then ends.
///
/// [`JournalOptions::archive`]: super::JournalOptions::archive
pub fn read_history(dir: &Path) -> Result<Records, JournalError> {
    let segments = list_history(dir)?;
    let after = segments
        .first()
        .map_or(0, |s| s.first_seq.saturating_sub(1));
    records_after(segments, after)
}

/// The records of `segments` (in seq order) with a seq above `after`.
fn records_after(segments: Vec<SegmentFile>, after: u64) -> Result<Records, JournalError> {
    let start = segments
        .iter()
        .rposition(|segment| segment.first_seq <= after.saturating_add(1))
        .unwrap_or(0);
    if let Some(first) = segments.first() {
        if first.first_seq > after.saturating_add(1) {
            return Err(JournalError::Missing {
                wanted: after + 1,
                first: first.first_seq,
            });
        }
    }
    Ok(Records {
        segments,
        next_segment: start,
        cursor: None,
        continues: None,
        after,
        tail: None,
        done: false,
        check_chain: false,
        records: 0,
    })
}

/// The records [`read`] returns: `(seq, payload)` in seq order, or one
/// `Err` (corruption, I/O) that ends the iteration.
#[derive(Debug)]
pub struct Records {
    segments: Vec<SegmentFile>,
    next_segment: usize,
    cursor: Option<Cursor>,
    continues: Option<Continues>,
    after: u64,
    tail: Option<TailReport>,
    done: bool,
    check_chain: bool,
    records: u64,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .field("expected", &self.expected)
            .finish()
    }
}

impl Records {
    /// The torn tail skipped at the end, once the iteration reached it.
    pub fn tail(&self) -> Option<&TailReport> {
        self.tail.as_ref()
    }

    /// The last seq walked through so far (0 before any).
    pub fn last_seq(&self) -> u64 {
        match &self.cursor {
            Some(cursor) => cursor.expected - 1,
            None => self.continues.map_or(0, |c| c.next_seq - 1),
        }
    }

    fn fail(&mut self, error: JournalError) -> Option<Result<(u64, Vec<u8>), JournalError>> {
        self.done = true;
        self.cursor = None;
        Some(Err(error))
    }
}

impl Iterator for Records {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(cursor) = self.cursor.as_mut() else {
                if self.next_segment == self.segments.len() {
                    self.done = true;
                    return None;
                }
                let is_last = self.next_segment + 1 == self.segments.len();
                let segment = self.segments[self.next_segment].clone();
                self.next_segment += 1;
                match Cursor::start(&segment, is_last, self.continues, self.check_chain) {
                    Ok(Start::Cursor(cursor)) => self.cursor = Some(cursor),
                    Ok(Start::Tail(tail)) => {
                        self.tail = Some(tail);
                        self.done = true;
                    }
                    Err(error) => return self.fail(error),
                }
                continue;
            };
            let offset = cursor.pos;
            match cursor.step() {
                Step::Record(frame) => {
                    self.records += 1;
                    if let Some(chain) = cursor.chain {
                        if chain.tag() != frame.tag {
                            let error = JournalError::Tampered {
                                file: cursor.path.clone(),
                                offset: offset as u64,
                                seq: frame.seq,
                            };
                            return self.fail(error);
                        }
                    }
                    if frame.seq > self.after {
                        let payload = cursor.bytes[frame.payload].to_vec();
                        return Some(Ok((frame.seq, payload)));
                    }
                }
                Step::End => {
                    self.continues = Some(cursor.continues());
                    self.cursor = None;
                }
                Step::Tail(tail) => {
                    self.continues = Some(cursor.continues());
                    self.cursor = None;
                    self.tail = Some(tail);
                    self.done = true;
                }
                Step::Corrupt(error) => return self.fail(error),
            }
        }
    }
}

/// What [`verify`] found: a whole, unbroken chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: usize,
    /// Records checked.
    pub records: u64,
    /// The first record's seq (0 when there are none).
    pub first_seq: u64,
    /// The last record's seq (0 when there are none).
    pub last_seq: u64,
    /// The chain state after the last record (32 bytes) in hex: record it
    /// elsewhere to detect a rewrite of the whole journal later.
    pub head: String,
    /// A torn tail skipped at the end (a crash mid-write; `open` cuts it).
    pub tail: Option<TailReport>,
}

/// Checks every segment header, every record's CRC, the seqs' density and
/// the whole hash chain from the first record kept, archive included
/// (see [`read_history`]; anchored by the first segment's header). The
/// first broken record is the error:
/// [`JournalError::Corrupt`] (a bad CRC or header, naming file and
/// offset) or [`JournalError::Tampered`] (a record whose CRC matches but
/// whose chain tag does not: its content, or an earlier record's, was
/// edited). Read-only.
pub fn verify(dir: &Path) -> Result<VerifyReport, JournalError> {
    let mut records = read_history(dir)?;
    records.check_chain = true;
    let first_seq = records.segments.first().map_or(0, |s| s.first_seq);
    let segments = records.segments.len();
    for record in records.by_ref() {
        record?;
    }
    let last_seq = records.last_seq();
    let head = match (&records.cursor, records.continues) {
        (Some(cursor), _) => cursor.chain,
        (None, Some(continues)) => continues.chain,
        (None, None) => Some(Chain::START),
    };
    Ok(VerifyReport {
        segments,
        records: records.records,
        first_seq: if records.records == 0 { 0 } else { first_seq },
        last_seq: if records.records == 0 { 0 } else { last_seq },
        head: head.map(Chain::hex).unwrap_or_default(),
        tail: records.tail,
    })
}

//! The journal (feature `journal`): records with dense sequence numbers
//! appended by any thread, written in seq order to segment files by one
//! writer thread that batches everything queued into one `write` and one
//! `fdatasync` (group commit), and read back in order after a crash.
//! Payloads are opaque bytes: this module knows nothing of the engine.
//!
//! The pieces: [`Journal`] (open a directory, append, wait for
//! durability, sync, delete covered segments), [`read`] (the records after
//! a seq, for recovery), [`verify`] (every CRC and the hash chain).
//! The format, the ordering and what a crash can lose are in
//! `docs/JOURNAL.md`.
//!
//! Module map: `format.rs` (bytes on disk), `order.rs` (the ring of record slots
//! and watermarks, modelled under loom), `writer.rs` (the writer thread),
//! `segments.rs` (reading and the tail rule), `waiters.rs` (threads parked
//! for durability, woken as a tree), `lock.rs` (the directory
//! lock), `error.rs` ([`JournalError`]).
//!
//! Invariants: seqs are dense and written strictly in order; a seq is
//! reported durable only after the `fdatasync` (the write, in
//! [`Durability::None`]) covering it and every seq below returned; a
//! writer error is sticky; one `Journal` per directory at a time.
//!
//! ```
//! # fn main() -> Result<(), omnistock::journal::JournalError> {
//! use omnistock::journal::{Journal, JournalOptions};
//! let dir = std::env::temp_dir().join(format!("omnistock-doc-journal-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let (journal, report) = Journal::open(&dir, JournalOptions::default())?;
//! assert_eq!(report.last_seq, 0);
//! // Seqs are taken densely by the caller; any thread may append any of them.
//! journal.append(2, b"second".to_vec());
//! journal.append(1, b"first".to_vec());
//! journal.wait_durable(2)?; // 1 and 2 are on disk, fdatasync'd
//! drop(journal);
//! let (journal, report) = Journal::open(&dir, JournalOptions::default())?;
//! assert_eq!(journal.last_seq(), 2);
//! # drop(journal);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

mod error;
mod format;
mod lock;
mod order;
mod segments;
mod waiters;
mod writer;

pub use error::JournalError;
pub use format::MAX_PAYLOAD;
pub use order::INLINE_PAYLOAD;
pub(crate) use segments::{list_segments, ARCHIVE};
pub use segments::{read, read_history, verify, Records, TailReport, VerifyReport};

/// The ordering step, public only to the loom model (tests/loom_journal.rs).
#[cfg(omnistock_loom)]
#[doc(hidden)]
pub use order::{Batch, Order, Ready};

use crate::sync::{AtomicU64, Mutex, Ordering};
use format::{Chain, Header};
#[cfg(not(omnistock_loom))]
use order::Order;
use segments::{Cursor, Start, Step};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

/// When a record counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// After the `fdatasync` of the batch that wrote it. The writer syncs
    /// after every batch; everyone waiting on records of one batch shares
    /// that one `fdatasync` (group commit). A crash loses nothing reported
    /// durable.
    Sync,
    /// After the next periodic `fdatasync`, at most `every_ms` after the
    /// record was written. A crash loses at most the last window; what
    /// survives is a prefix of the seqs.
    Batch {
        /// Milliseconds between `fdatasync`s (while there is something to sync).
        every_ms: u64,
    },
    /// Once written to the OS (no `fdatasync`): survives the process being
    /// killed, not a power loss or kernel crash. [`Journal::sync`] still syncs.
    None,
}

/// How a [`Journal`] writes. `Default`: [`Durability::Sync`], 64 MiB
/// segments, backpressure at 65,536 records or 64 MiB of big payloads queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalOptions {
    /// When a record counts as durable.
    pub durability: Durability,
    /// A segment is rolled before a record would take it past this many
    /// bytes (a record larger than this gets a segment of its own).
    pub segment_bytes: u64,
    /// Backpressure: `append` of a seq waits while it is more than this
    /// many seqs above the last one written (so at most this many records
    /// wait in memory). Capped at 65,536: the records wait in a ring of
    /// slots of that many entries at most (64 bytes each).
    pub max_queued_records: usize,
    /// Backpressure: `append` of a payload of 1 KiB or more waits while
    /// this many bytes of such payloads are appended and not yet written
    /// (smaller payloads are bounded by `max_queued_records`).
    pub max_queued_bytes: usize,
    /// Recovery after a power loss in `Batch` or `None` mode, where pages
    /// written but never synced can reach the disk out of order (a hole,
    /// then later records): with `true`, `open` cuts the last segment at
    /// its first bad record even when valid records follow, and reports
    /// the cut in [`OpenReport::truncated`] (what survives is a prefix of
    /// the seqs). With `false` (the default) that case is
    /// [`JournalError::Corrupt`], as a flipped bit there would be. Never
    /// needed in `Sync` mode, where everything before the last batch was
    /// synced.
    pub salvage_last_segment: bool,
    /// Keep the history a snapshot covers: [`Journal::delete_through`]
    /// moves covered segments into `DIR/archive/` instead of deleting them,
    /// and [`read_history`] and [`verify`] (so `Inventory::history` and
    /// `Inventory::verify`) reach back to the first archived record.
    /// Recovery never reads the archive. It grows until pruned: delete its
    /// oldest files (the chain is then checked from the oldest one left,
    /// whose header carries the chain state entering it), never one in the
    /// middle. Off by default (also when options serialized before this
    /// field are read back).
    #[serde(default)]
    pub archive: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            durability: Durability::Sync,
            segment_bytes: 64 << 20,
            max_queued_records: 1 << 16,
            max_queued_bytes: 64 << 20,
            salvage_last_segment: false,
            archive: false,
        }
    }
}

/// What [`Journal::open`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReport {
    /// The last seq on disk (0 when empty): appends continue at `last_seq + 1`.
    pub last_seq: u64,
    /// Segment files in the directory after opening.
    pub segments: usize,
    /// Torn tails cut off: a record cut short or garbled at the end of the
    /// last segment (truncated), or a segment whose header was never fully
    /// written (removed; the segment before it is then checked the same way).
    pub truncated: Vec<TailReport>,
}

/// Counters of the writer, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStats {
    /// Records written.
    pub records: u64,
    /// Batches written (each one `write` per segment touched).
    pub batches: u64,
    /// `write` calls.
    pub writes: u64,
    /// Bytes written (frames, headers of rolled segments excluded).
    pub bytes: u64,
    /// `fdatasync` calls on segment files.
    pub fsyncs: u64,
    /// Total nanoseconds spent in those `fdatasync` calls.
    pub fsync_nanos: u64,
    /// Segments created by rolling.
    pub segments_created: u64,
}

#[derive(Debug, Default)]
struct Stats {
    records: AtomicU64,
    batches: AtomicU64,
    writes: AtomicU64,
    bytes: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    segments_created: AtomicU64,
}

/// What the handle, the futures and the writer thread share.
#[derive(Debug)]
struct Shared {
    order: Order,
    stats: Stats,
    dir: PathBuf,
    /// Covered segments go to `DIR/archive/` ([`JournalOptions::archive`]).
    archive: bool,
    /// First seqs of the segment files, oldest first.
    segments: Mutex<VecDeque<u64>>,
}

/// An open journal directory: one writer thread, any number of appending
/// and waiting threads. `Send + Sync`; one per directory (a lock file).
/// Dropping it writes and syncs what was appended (up to the first gap)
/// and joins the writer.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    last_seq: u64,
    _lock: lock::DirLock,
}

impl Journal {
    /// Creates or opens `dir`, takes its exclusive lock (a second open of
    /// the same directory, in any process, is [`JournalError::Locked`]
    /// while this one lives), and scans the last segment: a torn or
    /// garbled tail is truncated and reported in [`OpenReport::truncated`];
    /// a bad record followed by valid ones, or a bad header of a segment
    /// that is not the last, is [`JournalError::Corrupt`] naming file and
    /// offset. Older segments' headers are checked for continuity by
    /// [`read`] and [`verify`], which read every record. Appends continue
    /// after the last seq.
    pub fn open(
        dir: &Path,
        options: JournalOptions,
    ) -> Result<(Journal, OpenReport), JournalError> {
        fs::create_dir_all(dir).map_err(|e| JournalError::io(dir, e))?;
        let lock = lock::DirLock::acquire(dir)?;
        let mut segments = segments::list_segments(dir)?;
        let mut report = OpenReport::default();
        let tail = loop {
            let Some(last) = segments.last().cloned() else {
                break None;
            };
            match Cursor::start(&last, true, None, true)? {
                Start::Tail(tail) => {
                    fs::remove_file(&last.path).map_err(|e| JournalError::io(&last.path, e))?;
                    writer::sync_dir(dir)?;
                    report.truncated.push(tail);
                    segments.pop();
                    if segments.is_empty() && last.first_seq != 1 {
                        // The chain state entering it is gone with its header.
                        return Err(JournalError::corrupt(
                            &last.path,
                            0,
                            "the only segment left had a torn header and does not start at seq 1",
                        ));
                    }
                }
                Start::Cursor(mut cursor) => {
                    cursor.salvage = options.salvage_last_segment;
                    loop {
                        match cursor.step() {
                            Step::Record(_) => {}
                            Step::End => break,
                            Step::Tail(tail) => {
                                let file = OpenOptions::new()
                                    .write(true)
                                    .open(&cursor.path)
                                    .map_err(|e| JournalError::io(&cursor.path, e))?;
                                file.set_len(tail.offset)
                                    .and_then(|()| file.sync_all())
                                    .map_err(|e| JournalError::io(&cursor.path, e))?;
                                cursor.bytes.truncate(tail.offset as usize);
                                report.truncated.push(tail);
                                break;
                            }
                            Step::Corrupt(error) => return Err(error),
                        }
                    }
                    break Some(cursor);
                }
            }
        };
        let (file, path, len, chain, last_seq) = match tail {
            Some(cursor) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&cursor.path)
                    .map_err(|e| JournalError::io(&cursor.path, e))?;
                // Appends go after the last record, over any zeroed space.
                let len = cursor.pos as u64;
                let chain = cursor.chain.expect("the last segment's walk hashes");
                (file, cursor.path, len, chain, cursor.expected - 1)
            }
            None => {
                let header = Header {
                    first_seq: 1,
                    chain: Chain::START,
                };
                let (file, path) = writer::create_segment(dir, header)?;
                segments.push(segments::SegmentFile {
                    first_seq: 1,
                    path: path.clone(),
                });
                (file, path, format::HEADER_LEN as u64, Chain::START, 0)
            }
        };
        report.last_seq = last_seq;
        report.segments = segments.len();
        let shared = Arc::new(Shared {
            order: Order::new(
                last_seq,
                options.durability == Durability::None,
                options.max_queued_records,
                options.max_queued_bytes,
            ),
            stats: Stats::default(),
            dir: dir.to_path_buf(),
            archive: options.archive,
            segments: Mutex::new(segments.iter().map(|s| s.first_seq).collect()),
        });
        let writer = writer::Writer {
            shared: shared.clone(),
            durability: options.durability,
            segment_bytes: options.segment_bytes,
            allocated: file
                .metadata()
                .map_err(|e| JournalError::io(&path, e))?
                .len()
                .max(len),
            preallocate: options.durability == Durability::Sync,
            file,
            path,
            len,
            chain,
            written: last_seq,
            synced: last_seq,
            buf: Vec::new(),
        };
        let watch = shared.clone();
        let handle = std::thread::Builder::new()
            .name("omnistock-journal".into())
            .spawn(move || {
                let dir = watch.dir.clone();
                let run = std::panic::AssertUnwindSafe(|| writer.run());
                if std::panic::catch_unwind(run).is_err() {
                    // Never leave waiters hanging, nor claim durability.
                    let panicked = std::io::Error::other("the journal writer thread panicked");
                    watch.order.fail(JournalError::io(dir, panicked));
                    watch.order.closed();
                }
            })
            .map_err(|e| JournalError::io(dir, e))?;
        Ok((
            Journal {
                shared,
                writer: Some(handle),
                last_seq,
                _lock: lock,
            },
            report,
        ))
    }

    /// The last seq on disk at open (0 when empty). The first append must
    /// be `last_seq() + 1`.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Hands record `seq` over to the writer, without I/O and without
    /// waiting for the disk: one short critical section.
    ///
    /// Seqs are dense: every seq from `last_seq() + 1` upward must be
    /// appended exactly once, by any thread, in any order. The writer
    /// writes them strictly in seq order; a record waits in memory for the
    /// gap below it to fill. A seq appended twice, or at or below
    /// `last_seq()`, sets a sticky [`JournalError::Sequence`] (as does a
    /// payload over [`MAX_PAYLOAD`]); after an error the record is dropped.
    ///
    /// Backpressure: while `seq` is more than
    /// [`JournalOptions::max_queued_records`] above the last seq written
    /// (or, for a payload of 1 KiB or more, while `max_queued_bytes` of
    /// such payloads wait), `append` blocks until the writer catches up.
    /// The append of the lowest missing seq always gets in once the
    /// records below it are written, so the queue always drains, provided
    /// no thread holding an unappended seq waits for one blocked in
    /// `append` (take a seq and append it without waiting on other
    /// appenders in between).
    ///
    /// The payload is copied: into its ring slot for one of up to
    /// [`INLINE_PAYLOAD`] bytes (no allocation), else into a buffer of its
    /// own.
    pub fn append(&self, seq: u64, payload: impl AsRef<[u8]>) {
        self.shared.order.append(seq, payload.as_ref());
    }

    /// Blocks until every record with a seq at or below `seq` is durable
    /// (see [`Durability`]: synced, or written in `None` mode). Returns the
    /// writer's sticky error instead if it failed first, and
    /// [`JournalError::Closed`] if the journal closed first. Waiting for a
    /// seq nobody appends waits forever.
    pub fn wait_durable(&self, seq: u64) -> Result<(), JournalError> {
        self.shared.order.wait_durable(seq)
    }

    /// The same wait as a future, for async services: it needs no runtime
    /// (a plain `std::future::Future`, woken by the writer thread).
    pub fn durable(&self, seq: u64) -> DurableFuture {
        DurableFuture {
            shared: self.shared.clone(),
            seq,
            token: 0,
        }
    }

    /// The writer's sticky error, once it failed (a write or sync error,
    /// or an append out of sequence): from then on nothing more is written,
    /// in any durability mode. One atomic load while there is none.
    pub fn error(&self) -> Option<JournalError> {
        self.shared.order.error()
    }

    /// The highest seq known durable (every seq below it is too).
    pub fn durable_seq(&self) -> u64 {
        self.shared.order.durable_seq()
    }

    /// The highest seq written to the OS (not necessarily synced).
    pub fn written_seq(&self) -> u64 {
        self.shared.order.written_seq()
    }

    /// Writes and `fdatasync`s every record appended so far (up to the
    /// first gap), in every durability mode; returns the seq synced through.
    /// After a writer error it returns that error.
    pub fn sync(&self) -> Result<u64, JournalError> {
        self.shared.order.sync()
    }

    /// Deletes the segment files every record of which has a seq at or
    /// below `seq` (a snapshot covers them), oldest first, after syncing
    /// what was appended; with [`JournalOptions::archive`], moves them into
    /// `DIR/archive/` instead. The current segment is never deleted. The
    /// remaining first segment's header carries the chain state entering
    /// it, so [`verify`] still checks the chain from there.
    ///
    /// Without `archive`, an archive an earlier run left would no longer
    /// join the segments once one is deleted: before the first deletion it
    /// is renamed `DIR/archive-before-SEQ/` (SEQ: the first segment
    /// deleted), kept but no longer read by [`read_history`] or [`verify`].
    pub fn delete_through(&self, seq: u64) -> Result<(), JournalError> {
        self.sync()?;
        let dir = &self.shared.dir;
        let archive = self.shared.archive.then(|| dir.join(segments::ARCHIVE));
        if let Some(archive) = &archive {
            fs::create_dir_all(archive).map_err(|e| JournalError::io(archive, e))?;
        }
        let mut segments = self.shared.segments.lock();
        let mut moved = false;
        while segments.len() >= 2 && segments[1] <= seq.saturating_add(1) {
            if archive.is_none() && !moved {
                detach_archive(dir, segments[0])?;
            }
            let name = format::segment_name(segments[0]);
            let path = dir.join(&name);
            match &archive {
                // Atomic within the file system: the segment is in one
                // place or the other whenever a crash comes.
                Some(archive) => fs::rename(&path, archive.join(&name)),
                None => fs::remove_file(&path),
            }
            .map_err(|e| JournalError::io(&path, e))?;
            segments.pop_front();
            moved = true;
        }
        drop(segments);
        if moved {
            if let Some(archive) = &archive {
                writer::sync_dir(archive)?;
            }
            writer::sync_dir(dir)?;
        }
        Ok(())
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> JournalStats {
        let s = &self.shared.stats;
        JournalStats {
            records: s.records.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            fsync_nanos: s.fsync_nanos.load(Ordering::Relaxed),
            segments_created: s.segments_created.load(Ordering::Relaxed),
        }
    }

    /// Records appended and not yet written (the backpressure count).
    pub fn queued_records(&self) -> usize {
        self.shared.order.queued_records()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

/// Renames `dir`'s archive, if it has one, to `archive-before-FIRST`
/// (synced): segment `first` is about to be deleted, after which the
/// archive would end short of the segments left.
fn detach_archive(dir: &Path, first: u64) -> Result<(), JournalError> {
    let archive = dir.join(segments::ARCHIVE);
    if !archive.is_dir() {
        return Ok(());
    }
    let detached = dir.join(format!("{}-before-{first}", segments::ARCHIVE));
    fs::rename(&archive, &detached).map_err(|e| JournalError::io(&archive, e))?;
    writer::sync_dir(dir)
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.order.close();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The future [`Journal::durable`] returns: ready with `Ok(())` once the
/// seq and every seq below are durable, or with the writer's error, or
/// [`JournalError::Closed`]. It holds the journal's shared state, not the
/// journal: dropping the journal resolves it.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct DurableFuture {
    shared: Arc<Shared>,
    seq: u64,
    token: u64,
}

impl Future for DurableFuture {
    type Output = Result<(), JournalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this
            .shared
            .order
            .poll_durable(this.seq, &mut this.token, cx.waker())
        {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }
}

impl Drop for DurableFuture {
    fn drop(&mut self) {
        self.shared.order.forget_waker(self.token);
    }
}

#[cfg(all(test, feature = "replay", not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn options_serialized_before_the_archive_field_read_back_without_it() {
        let mut value = serde_json::to_value(JournalOptions::default()).unwrap();
        let fields = value.as_object_mut().unwrap();
        assert_eq!(
            fields.remove("archive"),
            Some(serde_json::Value::Bool(false))
        );
        let options: JournalOptions = serde_json::from_value(value).unwrap();
        assert_eq!(options, JournalOptions::default());
    }
}

//! The writer thread: takes the ready records from [`Order`] in batches,
//! frames and chains them, writes each batch with one `write` per segment
//! touched, rolls segments at `segment_bytes`, and syncs by the durability
//! mode. It owns the current segment file; nothing else writes it.
//!
//! Invariants: records are written in seq order with no gap; the written
//! and durable watermarks are published only after the write (the
//! `fdatasync`) they claim returned; a failed write or sync is handed to
//! [`Order::fail`] and the thread stops writing.

use super::error::JournalError;
use super::format::{self, Chain, Header, HEADER_LEN};
use super::order::{Order, Ready};
use super::{Durability, Shared};
use crate::sync::Ordering;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The state the writer thread owns.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) durability: Durability,
    pub(crate) segment_bytes: u64,
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Bytes of records (and header) in the current segment file: the
    /// next batch is written at this offset.
    pub(crate) len: u64,
    /// The file's size: at or above `len`, zeros past it.
    pub(crate) allocated: u64,
    /// Zero-fill the segment ahead of the records (`Durability::Sync`), so
    /// that the `fdatasync` after a batch rarely has a file size to commit.
    pub(crate) preallocate: bool,
    /// The chain state after the last record written.
    pub(crate) chain: Chain,
    /// The last seq written (to the OS) and synced.
    pub(crate) written: u64,
    pub(crate) synced: u64,
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    fn order(&self) -> &Order {
        &self.shared.order
    }

    /// The thread's body: runs until the journal closes or an I/O call fails.
    pub(crate) fn run(mut self) {
        let mut batch = Ready::default();
        let mut last_sync = Instant::now();
        loop {
            let timeout = match self.durability {
                Durability::Batch { every_ms } if self.written > self.synced => {
                    let every = Duration::from_millis(every_ms);
                    Some(every.saturating_sub(last_sync.elapsed()))
                }
                _ => None,
            };
            let taken = self.shared.order.take(&mut batch, timeout);
            if taken.failed {
                break;
            }
            if taken.records > 0 {
                if let Err(error) = self.write_batch(taken.first, &mut batch) {
                    self.order().fail(error);
                    break;
                }
            }
            let due = match self.durability {
                Durability::Sync => true,
                Durability::Batch { every_ms } => {
                    last_sync.elapsed() >= Duration::from_millis(every_ms)
                }
                Durability::None => false,
            };
            let asked = taken.sync_target > self.synced || taken.closing;
            if self.written > self.synced && (due || asked) {
                if let Err(error) = self.sync() {
                    self.order().fail(error);
                    break;
                }
                last_sync = Instant::now();
                self.synced = self.written;
                self.order().synced(self.written);
            }
            if taken.closing {
                if let Err(error) = self.trim() {
                    self.order().fail(error);
                }
                break;
            }
        }
        self.shared.order.closed();
    }

    /// Closing: cuts the zeroed space off the current segment and syncs
    /// that (a segment at rest ends at its last record).
    fn trim(&mut self) -> Result<(), JournalError> {
        if self.cut_zeroed()? {
            self.file
                .sync_all()
                .map_err(|e| JournalError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Cuts the current segment back to its last record; true if there was
    /// zeroed space to cut (the caller syncs).
    fn cut_zeroed(&mut self) -> Result<bool, JournalError> {
        if self.allocated <= self.len {
            return Ok(false);
        }
        self.file
            .set_len(self.len)
            .map_err(|e| JournalError::io(&self.path, e))?;
        self.allocated = self.len;
        Ok(true)
    }

    /// `fdatasync` of the current segment, counted and timed.
    fn sync(&mut self) -> Result<(), JournalError> {
        let started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| JournalError::io(&self.path, e))?;
        let stats = &self.shared.stats;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats
            .fsync_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Frames, chains and writes records `first..first + batch.len()`,
    /// rolling to a new segment where the current one would pass
    /// `segment_bytes` (a segment always takes at least one record).
    fn write_batch(&mut self, first: u64, batch: &mut Ready) -> Result<(), JournalError> {
        debug_assert_eq!(first, self.written + 1);
        let records = batch.len();
        self.buf.clear();
        for (i, payload) in batch.iter().enumerate() {
            let seq = first + i as u64;
            let frame_len = format::frame_len(payload.len()) as u64;
            let pending = self.len + self.buf.len() as u64;
            if pending > HEADER_LEN as u64 && pending + frame_len > self.segment_bytes {
                self.flush()?;
                self.roll(seq)?;
            }
            self.chain = self.chain.after(seq, payload);
            format::encode_frame(&mut self.buf, seq, &self.chain.tag(), payload);
        }
        batch.clear();
        self.flush()?;
        self.written = first + records as u64 - 1;
        let stats = &self.shared.stats;
        stats.records.fetch_add(records as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        self.order().written(self.written);
        Ok(())
    }

    /// Writes the buffered frames to the current segment at `len`; with
    /// `preallocate`, zero-fills [`ZERO_AHEAD`] bytes past them whenever
    /// they pass the file's size (not beyond `segment_bytes`).
    fn flush(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        write_all_at(&self.file, &self.buf, self.len)
            .map_err(|e| JournalError::io(&self.path, e))?;
        self.len += self.buf.len() as u64;
        if self.len > self.allocated {
            self.allocated = self.len;
            let target = (self.len + ZERO_AHEAD).min(self.segment_bytes);
            if self.preallocate && target > self.len {
                write_zeros(&self.file, self.len, target - self.len)
                    .map_err(|e| JournalError::io(&self.path, e))?;
                self.allocated = target;
            }
        }
        let stats = &self.shared.stats;
        stats.writes.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        Ok(())
    }

    /// Closes the current segment, synced, and starts a new one whose
    /// first record is `first_seq`, created durably: in every mode, so
    /// that `sync()`, which syncs only the current segment, covers every
    /// record (in `None`, three syncs a segment, not a wait per record).
    fn roll(&mut self, first_seq: u64) -> Result<(), JournalError> {
        self.cut_zeroed()?; // synced just below
        self.sync()?;
        let dir = &self.shared.dir;
        let (file, path) = create_segment(
            dir,
            Header {
                first_seq,
                chain: self.chain,
            },
        )?;
        self.file = file;
        self.path = path;
        self.len = HEADER_LEN as u64;
        self.allocated = self.len;
        self.shared.segments.lock().push_back(first_seq);
        self.shared
            .stats
            .segments_created
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Creates a segment file holding only `header`, opened for appending; the
/// file and its directory entry are synced.
pub(crate) fn create_segment(
    dir: &std::path::Path,
    header: Header,
) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(format::segment_name(header.first_seq));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| JournalError::io(&path, e))?;
    file.write_all(&header.encode())
        .map_err(|e| JournalError::io(&path, e))?;
    file.sync_data().map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Bytes the writer zero-fills past the records in `Durability::Sync`.
const ZERO_AHEAD: u64 = 1 << 20;

/// Writes all of `bytes` at `offset` (positional: the file is not opened
/// for appending, since zeroed space may follow the records).
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)
    }
}

/// Writes `count` zero bytes at `offset`.
fn write_zeros(file: &File, offset: u64, count: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut done = 0;
    while done < count {
        let n = (count - done).min(ZEROS.len() as u64);
        write_all_at(file, &ZEROS[..n as usize], offset + done)?;
        done += n;
    }
    Ok(())
}

/// Makes `dir`'s entries (files created, removed) durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), JournalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| JournalError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

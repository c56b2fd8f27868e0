//! The engine on a journal (feature `journal`): the record sink that
//! appends to a [`Journal`] and waits as the durability mode says, opening
//! a directory (newest valid snapshot, then the journal after it),
//! snapshots, backups, history and verify.
//!
//! A directory holds the journal's segment files and
//! `snapshot-<covers>.snap` files (see `snapshot.rs`). Invariants: a
//! snapshot file appears (by rename) only once its image and every record
//! it may reflect are on disk; segments are deleted only through what the
//! newest snapshot covers; one snapshot or backup at a time.

use super::record::{decode, Record};
use super::recover;
use super::sink::{not_durable, Journaled, DEFERRED, LAST_SEQ};
use super::{snapshot, RecoveryError};
use crate::engine::{Inventory, InventoryBuilder};
use crate::error::Error;
use crate::journal::{
    self, Durability, DurableFuture, Journal, JournalError, JournalOptions, TailReport,
    VerifyReport,
};
use crate::types::{ItemKey, ReservationId, Sku, StoreId};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What opening a journaled inventory found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    /// The last sequence number the snapshot covers (0 without one).
    pub snapshot_covers: u64,
    /// Snapshots skipped as damaged (a newer one's rename is atomic, so
    /// this is a disk fault), with why.
    pub damaged_snapshots: Vec<(PathBuf, String)>,
    /// Journal records applied after the snapshot.
    pub records_applied: u64,
    /// The last sequence number recovered: new records continue after it.
    pub last_seq: u64,
    /// Torn or garbled tails the journal cut off (records that were never
    /// acknowledged durable).
    pub truncated: Vec<TailReport>,
    /// How long recovery took, in ms.
    pub millis: u64,
}

const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";

fn snapshot_name(covers: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{covers:020}{SNAPSHOT_SUFFIX}")
}

/// The snapshot files of `dir`, newest (highest cover) first.
fn snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, RecoveryError> {
    let io = |source| RecoveryError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let covers = name
            .strip_prefix(SNAPSHOT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SNAPSHOT_SUFFIX))
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(covers) = covers {
            found.push((covers, entry.path()));
        }
    }
    found.sort_by_key(|(covers, _)| std::cmp::Reverse(*covers));
    Ok(found)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RecoveryError + '_ {
    move |source| RecoveryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `dir/name` so that a crash leaves either the whole
/// file or none: a temporary file, fsync'd, renamed, then the directory
/// fsync'd.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, RecoveryError> {
    let temporary = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    {
        let mut file = fs::File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(bytes).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
    }
    fs::rename(&temporary, &path).map_err(io_error(&path))?;
    sync_dir(dir)?;
    Ok(path)
}

fn sync_dir(dir: &Path) -> Result<(), RecoveryError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Copies each of `files` into `dest` under its name, each fsync'd.
fn copy_synced(files: &[PathBuf], dest: &Path) -> Result<(), RecoveryError> {
    for path in files {
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = dest.join(name);
        fs::copy(path, &to).map_err(io_error(path))?;
        fs::File::open(&to)
            .and_then(|file| file.sync_all())
            .map_err(io_error(&to))?;
    }
    Ok(())
}

/// Opens (or creates) the journaled inventory in `dir`.
pub(crate) fn open(
    builder: InventoryBuilder,
    dir: &Path,
    options: JournalOptions,
) -> Result<(Inventory, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let (journal, opened) = Journal::open(dir, options).map_err(RecoveryError::Journal)?;
    // A snapshot a crash interrupted before its rename: never used.
    for entry in fs::read_dir(dir).map_err(io_error(dir))?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    let mut report = RecoveryReport {
        truncated: opened.truncated.clone(),
        ..RecoveryReport::default()
    };
    // The newest snapshot whose checksum holds. A rename is atomic, so a
    // damaged one is a disk fault: report it and fall back.
    let mut image = None;
    for (covers, path) in snapshots(dir)? {
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        match snapshot::id_key(&bytes) {
            Ok(_) => {
                report.snapshot = Some(path);
                report.snapshot_covers = covers;
                image = Some(bytes);
                break;
            }
            Err(error) => report.damaged_snapshots.push((path, error.to_string())),
        }
    }
    let sink = Arc::new(Journaled {
        journal,
        durability: options.durability,
        snapshots: Mutex::new(()),
    });
    let builder = recover::builder_for(builder, image.as_deref())?.journaled(sink.clone());
    let inventory = builder.try_build().map_err(RecoveryError::Build)?;
    let records = journal::read(dir, report.snapshot_covers).map_err(RecoveryError::Journal)?;
    let mut applied = 0;
    let last = recover::replay(
        &inventory,
        image.as_deref(),
        records.map(|next| {
            applied += 1;
            next.map_err(RecoveryError::Journal)
        }),
    )?;
    let on_disk = sink.journal.last_seq();
    if last != on_disk.max(report.snapshot_covers) {
        return Err(RecoveryError::Gap {
            expected: last + 1,
            found: on_disk,
        });
    }
    if let Some(durable) = inventory.durability_state() {
        durable.seqs.set(last + 1);
    }
    report.records_applied = applied;
    report.last_seq = last;
    if image.is_none() {
        // Every directory gets a snapshot from the start: it keeps how
        // reservation ids are placed, which recovery needs to replay
        // forgetting in the order it happened.
        inventory.snapshot()?;
    }
    report.millis = started.elapsed().as_millis() as u64;
    Ok((inventory, report))
}

impl Inventory {
    /// Opens the journaled inventory in `dir` with the default settings
    /// and [`Durability::Sync`]: creates the directory if new; otherwise
    /// loads the newest valid snapshot and applies the journal after it
    /// (a torn tail is cut off and reported). See
    /// [`InventoryBuilder::journal`] for other settings.
    ///
    /// ```
    /// use omnistock::{Inventory, Sku, StoreId};
    ///
    /// let dir = std::env::temp_dir().join(format!("omnistock-doc-open-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let (inventory, _) = Inventory::open(&dir)?;
    /// inventory.restock(Sku(1), StoreId(1), 5)?; // durable when it returns
    /// drop(inventory);
    /// let (inventory, report) = Inventory::open(&dir)?;
    /// assert_eq!(inventory.level(Sku(1), StoreId(1))?.on_hand, 5);
    /// assert_eq!(report.last_seq, 1);
    /// # drop(inventory);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`RecoveryError`]: the directory is locked by another open
    /// inventory, a record before the tail is corrupt (named by file and
    /// offset), or the records do not fit together.
    pub fn open(dir: impl AsRef<Path>) -> Result<(Inventory, RecoveryReport), RecoveryError> {
        Inventory::builder()
            .journal(dir.as_ref(), Durability::Sync)
            .open()
    }

    fn journaled(&self) -> Option<&Arc<Journaled>> {
        self.durability_state()
            .and_then(|durable| durable.journal.as_ref())
    }

    /// The journal's directory, if journaled.
    pub fn journal_dir(&self) -> Option<&Path> {
        self.journaled().map(|journaled| journaled.journal.dir())
    }

    /// A future that is ready once every record up to `seq` is durable
    /// (runtime-agnostic: a plain `std::future::Future` woken by the
    /// journal's writer); `None` without a journal. With
    /// [`deferred`](Self::deferred), an async service acknowledges an
    /// operation without blocking its executor.
    pub fn durable(&self, seq: u64) -> Option<DurableFuture> {
        self.journaled()
            .map(|journaled| journaled.journal.durable(seq))
    }

    /// Runs `f` without waiting for durability in its operations (even in
    /// [`Durability::Sync`]), and returns its answer with the last
    /// sequence number its operations wrote (0: none wrote anything): wait
    /// for it with [`durable`](Self::durable) before acknowledging.
    ///
    /// ```
    /// # async fn handler(inventory: &omnistock::Inventory) -> Result<(), Box<dyn std::error::Error>> {
    /// use omnistock::{Channel, Line, ReservationId, Sku, StoreId};
    /// let (held, seq) = inventory.deferred(|inventory| {
    ///     inventory.reserve(ReservationId(1), Channel::Online, &[Line::new(Sku(1), StoreId(1), 1)])
    /// });
    /// let held = held?;
    /// if let Some(durable) = inventory.durable(seq) {
    ///     durable.await?; // the executor runs other tasks meanwhile
    /// }
    /// # let _ = held; Ok(())
    /// # }
    /// ```
    pub fn deferred<R>(&self, f: impl FnOnce(&Inventory) -> R) -> (R, u64) {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                DEFERRED.with(|deferred| deferred.set(self.0));
            }
        }
        let _restore = Restore(DEFERRED.with(|deferred| deferred.replace(true)));
        LAST_SEQ.with(|last| last.set(0));
        let answer = f(self);
        (answer, LAST_SEQ.with(Cell::get))
    }

    /// Writes a snapshot without stopping traffic, then deletes the
    /// journal segments it covers. A crash at any point loses nothing: the
    /// snapshot file appears whole (temporary file, fsync, rename, fsync of
    /// the directory) only after every record it may reflect is durable,
    /// and segments go only after that. Returns the last sequence number
    /// it covers. Nothing without a journal.
    ///
    /// # Errors
    ///
    /// A [`RecoveryError`] naming the file that could not be written, or
    /// the journal's error.
    pub fn snapshot(&self) -> Result<u64, RecoveryError> {
        let Some(journaled) = self.journaled() else {
            return Ok(0);
        };
        let _one = journaled.snapshot_lock();
        self.snapshot_locked(journaled)
    }

    fn snapshot_locked(&self, journaled: &Journaled) -> Result<u64, RecoveryError> {
        let journal = &journaled.journal;
        // Every step numbered up to `covers` made its change visible before
        // handing its record over, and the writer wrote it: the image holds
        // all of them.
        let covers = journal.written_seq();
        let image = self.image(covers);
        // Everything the image may reflect was numbered below this.
        let reflected = self.next_seq().saturating_sub(1);
        journal
            .wait_durable(reflected)
            .and_then(|()| journal.sync().map(drop))
            .map_err(RecoveryError::Journal)?;
        let dir = journal.dir().to_path_buf();
        write_atomically(&dir, &snapshot_name(covers), &image)?;
        for (older, path) in snapshots(&dir)? {
            if older < covers {
                fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        journal
            .delete_through(covers)
            .map_err(RecoveryError::Journal)?;
        Ok(covers)
    }

    /// A consistent copy of the live directory in `dest` (new or empty):
    /// a fresh snapshot and the journal segments after it, and the archive
    /// ([`JournalOptions::archive`]) if there is one, fsync'd.
    /// Restoring is [`Inventory::open`] on the copy. Traffic goes on
    /// meanwhile; the copy holds at least every operation acknowledged
    /// before the call (a record written during the copy may be cut off
    /// as a torn tail when the copy is opened).
    ///
    /// # Errors
    ///
    /// A [`RecoveryError`] naming the file that failed; `Io` if `dest`
    /// holds files already.
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<u64, RecoveryError> {
        let dest = dest.as_ref();
        let Some(journaled) = self.journaled() else {
            return Ok(0);
        };
        let _one = journaled.snapshot_lock();
        fs::create_dir_all(dest).map_err(io_error(dest))?;
        if fs::read_dir(dest).map_err(io_error(dest))?.next().is_some() {
            return Err(RecoveryError::Io {
                path: dest.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a backup goes into a new or empty directory",
                ),
            });
        }
        let covers = self.snapshot_locked(journaled)?;
        let dir = journaled.journal.dir();
        let mut names: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io_error(dir))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name == snapshot_name(covers) || name.ends_with(".journal")
            })
            .collect();
        // The snapshot first, then the segments in order.
        names.sort();
        copy_synced(&names, dest)?;
        // The archive's files never change once there, and only a snapshot
        // (which this one excludes) adds to it.
        let archive = dir.join(journal::ARCHIVE);
        if archive.is_dir() {
            let archived: Vec<PathBuf> = journal::list_segments(&archive)
                .map_err(RecoveryError::Journal)?
                .into_iter()
                .map(|segment| segment.path)
                .collect();
            let to = dest.join(journal::ARCHIVE);
            fs::create_dir(&to).map_err(io_error(&to))?;
            copy_synced(&archived, &to)?;
            sync_dir(&to)?;
        }
        sync_dir(dest)?;
        Ok(covers)
    }

    /// Every journal record kept that changed the item, oldest first:
    /// those in the directory's segments (a snapshot deletes the segments
    /// it covers) and, with [`JournalOptions::archive`], every one since the
    /// journal began (or since the oldest archived file left after
    /// pruning; see [`journal::read_history`]). A snapshot waits while
    /// the segments are read.
    ///
    /// # Errors
    ///
    /// The journal's error when a segment cannot be read.
    pub fn history(&self, sku: Sku, store: StoreId) -> Result<Vec<Record>, RecoveryError> {
        let item = ItemKey::new(sku, store);
        self.records_where(|record| record.touches_item(item))
    }

    /// Every journal record kept that changed the
    /// reservation `id`, oldest first (see [`history`](Self::history)).
    ///
    /// # Errors
    ///
    /// As [`history`](Self::history).
    pub fn reservation_history(&self, id: ReservationId) -> Result<Vec<Record>, RecoveryError> {
        self.records_where(|record| record.touches_reservation(id))
    }

    fn records_where(&self, keep: impl Fn(&Record) -> bool) -> Result<Vec<Record>, RecoveryError> {
        let Some(journaled) = self.journaled() else {
            return Ok(Vec::new());
        };
        let journal = &journaled.journal;
        // A snapshot moves or deletes the segments it covers: none runs
        // while the walk reads them.
        let _no_snapshot = journaled.snapshot_lock();
        journal.sync().map_err(RecoveryError::Journal)?;
        let mut found = Vec::new();
        for next in journal::read_history(journal.dir()).map_err(RecoveryError::Journal)? {
            let (seq, payload) = next.map_err(RecoveryError::Journal)?;
            let record = decode(seq, &payload).map_err(|error| RecoveryError::Record {
                seq,
                reason: error.to_string(),
            })?;
            if keep(&record) {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// The journal writer's counters (records, bytes, batches, fsyncs and
    /// their time); `None` without a journal.
    pub fn journal_stats(&self) -> Option<journal::JournalStats> {
        self.journaled().map(|journaled| journaled.journal.stats())
    }

    /// Checks every CRC and the whole hash chain of the journal (see
    /// [`verify`]), holding snapshots off meanwhile (a snapshot moves or
    /// deletes the segments it covers).
    ///
    /// # Errors
    ///
    /// As [`verify`].
    pub fn verify(&self) -> Result<Option<VerifyReport>, JournalError> {
        match self.journaled() {
            Some(journaled) => {
                // No snapshot moves a segment away during the walk.
                let _no_snapshot = journaled.snapshot_lock();
                journaled.journal.sync()?;
                journal::verify(journaled.journal.dir()).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Writes every record appended so far and fsyncs it (in every mode);
    /// for shutdown and tests. Returns the last sequence number synced.
    ///
    /// # Errors
    ///
    /// The journal's sticky error, as [`Error::NotDurable`].
    pub fn sync(&self) -> Result<u64, Error> {
        match self.journaled() {
            Some(journaled) => journaled.journal.sync().map_err(|e| not_durable(&e)),
            None => Ok(0),
        }
    }
}

/// Checks every CRC and the whole hash chain of the journal in `dir`
/// (read-only; a live directory too) and names the first record that
/// breaks it.
///
/// # Errors
///
/// [`JournalError::Corrupt`] naming the file, offset and seq.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, JournalError> {
    journal::verify(dir.as_ref())
}

impl InventoryBuilder {
    /// Opens the inventory journaled in `dir` with `durability` when
    /// [`open`](Self::open) is called (and 64 MiB segments; see
    /// [`journal_options`](Self::journal_options)).
    pub fn journal(self, dir: impl AsRef<Path>, durability: Durability) -> Self {
        let options = JournalOptions {
            durability,
            ..JournalOptions::default()
        };
        self.journal_options(dir, options)
    }

    /// As [`journal`](Self::journal), with every journal option.
    pub fn journal_options(self, dir: impl AsRef<Path>, options: JournalOptions) -> Self {
        self.set_journal(dir.as_ref().to_path_buf(), options)
    }

    /// Opens the inventory in the journal directory (see
    /// [`Inventory::open`]) with this builder's settings.
    ///
    /// # Errors
    ///
    /// As [`Inventory::open`]; [`RecoveryError::Build`] if no journal was
    /// set.
    pub fn open(self) -> Result<(Inventory, RecoveryReport), RecoveryError> {
        let (builder, journal) = self.take_journal();
        match journal {
            Some((dir, options)) => open(builder, &dir, options),
            None => Err(RecoveryError::Build(
                crate::error::BuildError::InvalidSetting {
                    setting: "journal",
                    reason: "open() needs a journal directory",
                },
            )),
        }
    }
}

//! [`JournalError`]: what went wrong with a journal directory or its
//! writer, naming the file and offset where the disk's content is at fault.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a journal operation failed.
///
/// Errors of the writer thread are sticky: once a write or an `fdatasync`
/// failed, every later [`wait_durable`](super::Journal::wait_durable),
/// [`durable`](super::Journal::durable) and [`sync`](super::Journal::sync)
/// returns the error (the records after the failure may not be on disk;
/// durability is never claimed for them). Reopen the directory to go on:
/// `open` truncates whatever the failure left half written at the tail.
#[non_exhaustive]
#[derive(Debug)]
pub enum JournalError {
    /// An I/O call on `path` failed (the directory, a segment, the lock file).
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The content of `file` at byte `offset` is not a valid segment header
    /// or record, and it is not the torn tail of the journal (valid records
    /// follow it, or it is in a segment other than the last). Nothing at or
    /// after it was applied. Restore the directory from a backup, or move
    /// the damaged segments away knowingly.
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad header or record in `file`.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The hash chain breaks at the record `seq` (at `offset` in `file`):
    /// its stored chain tag is not that of the chain state before it moved
    /// on by its own content, so this record or one before it was changed after it
    /// was written (its CRC may well match). Found by [`verify`](super::verify).
    Tampered {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the record in `file`.
        offset: u64,
        /// The record's seq.
        seq: u64,
    },
    /// Another `Journal` (in this process or another) holds the directory's
    /// lock. One journal writes a directory at a time; close the other first.
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The records a reader asked for start before the oldest segment kept
    /// (the older ones were deleted by `delete_through`): recover from a
    /// snapshot covering `first - 1`, not from an older one.
    Missing {
        /// The first seq asked for.
        wanted: u64,
        /// The oldest seq still in the directory.
        first: u64,
    },
    /// A record handed to [`append`](super::Journal::append) broke the
    /// sequence rule: its seq was appended before, or is at or below the
    /// journal's `last_seq` at open. The writer stops at the gap; fix the
    /// caller.
    Sequence {
        /// The offending seq.
        seq: u64,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A payload longer than [`MAX_PAYLOAD`](super::MAX_PAYLOAD) bytes.
    TooLarge {
        /// The record's seq.
        seq: u64,
        /// Its payload length in bytes.
        len: usize,
    },
    /// The journal was closed (dropped) before the awaited record became
    /// durable: it was never appended, or waited behind a gap.
    Closed,
}

impl JournalError {
    /// The error's snake_case name (`io`, `corrupt`, `tampered`, `locked`,
    /// `missing`, `sequence`, `too_large`, `closed`).
    pub fn name(&self) -> &'static str {
        match self {
            JournalError::Io { .. } => "io",
            JournalError::Corrupt { .. } => "corrupt",
            JournalError::Tampered { .. } => "tampered",
            JournalError::Locked { .. } => "locked",
            JournalError::Missing { .. } => "missing",
            JournalError::Sequence { .. } => "sequence",
            JournalError::TooLarge { .. } => "too_large",
            JournalError::Closed => "closed",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        JournalError::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// A copy for every waiter of a sticky writer error; an I/O error keeps its
/// kind and message.
impl Clone for JournalError {
    fn clone(&self) -> Self {
        match self {
            JournalError::Io { path, source } => JournalError::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            JournalError::Corrupt {
                file,
                offset,
                reason,
            } => JournalError::Corrupt {
                file: file.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            JournalError::Tampered { file, offset, seq } => JournalError::Tampered {
                file: file.clone(),
                offset: *offset,
                seq: *seq,
            },
            JournalError::Locked { dir } => JournalError::Locked { dir: dir.clone() },
            JournalError::Missing { wanted, first } => JournalError::Missing {
                wanted: *wanted,
                first: *first,
            },
            JournalError::Sequence { seq, reason } => JournalError::Sequence { seq: *seq, reason },
            JournalError::TooLarge { seq, len } => JournalError::TooLarge {
                seq: *seq,
                len: *len,
            },
            JournalError::Closed => JournalError::Closed,
        }
    }
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io { path, source } => {
                write!(f, "journal I/O error on {}: {source}", path.display())
            }
            JournalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "journal corrupt in {} at offset {offset}: {reason} (not a torn tail; restore from a backup)",
                file.display()
            ),
            JournalError::Tampered { file, offset, seq } => write!(
                f,
                "journal hash chain broken at record {seq} ({} offset {offset}): this record or an earlier one was changed",
                file.display()
            ),
            JournalError::Locked { dir } => write!(
                f,
                "journal directory {} is locked by another open journal",
                dir.display()
            ),
            JournalError::Missing { wanted, first } => write!(
                f,
                "journal records from {wanted} were asked for, but the oldest kept is {first} (older segments were deleted)"
            ),
            JournalError::Sequence { seq, reason } => {
                write!(f, "journal append of seq {seq} refused: {reason}")
            }
            JournalError::TooLarge { seq, len } => write!(
                f,
                "journal record {seq} has a {len}-byte payload, over the {} limit",
                super::MAX_PAYLOAD
            ),
            JournalError::Closed => {
                write!(f, "journal closed before the record became durable")
            }
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

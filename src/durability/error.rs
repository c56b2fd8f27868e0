//! [`RecoveryError`]: why an inventory could not be recovered.

use crate::error::BuildError;
use std::fmt;

/// Why an inventory could not be recovered. Nothing was changed on disk
/// beyond truncating a torn tail (which the report of a successful
/// recovery names).
#[derive(Debug)]
#[non_exhaustive]
pub enum RecoveryError {
    /// A snapshot that was to be loaded is damaged.
    Snapshot {
        /// What is wrong with it.
        reason: String,
    },
    /// A record does not decode, or does not fit the state before it
    /// (a journal that was not written by this engine, or was edited).
    Record {
        /// The record.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A sequence number is missing: the records are not dense.
    Gap {
        /// The number that should have come next.
        expected: u64,
        /// The number that came.
        found: u64,
    },
    /// The inventory's settings or memory.
    Build(BuildError),
    /// The journal could not be read or opened.
    #[cfg(feature = "journal")]
    Journal(crate::journal::JournalError),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Snapshot { reason } => write!(f, "damaged snapshot: {reason}"),
            RecoveryError::Record { seq, reason } => write!(f, "record {seq}: {reason}"),
            RecoveryError::Gap { expected, found } => {
                write!(f, "record {expected} is missing (found {found} after it)")
            }
            RecoveryError::Build(error) => write!(f, "{error}"),
            #[cfg(feature = "journal")]
            RecoveryError::Journal(error) => write!(f, "journal: {error}"),
            RecoveryError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for RecoveryError {}

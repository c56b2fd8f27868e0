//! The directory lock: an exclusive `flock` on `DIR/LOCK`, held for the
//! life of a [`Journal`](super::Journal). flock locks belong to the open
//! file, so a second open of the same directory fails whether it comes
//! from another process or this one. The lock goes away with the file
//! descriptor, also when the process dies. (On non-Unix targets there is
//! no lock.)

use super::error::JournalError;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// The lock file's name inside a journal directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A held directory lock; released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        #[cfg(unix)]
        {
            use rustix::fs::{flock, FlockOperation};
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
                    return Err(JournalError::Locked {
                        dir: dir.to_path_buf(),
                    })
                }
                Err(errno) => return Err(JournalError::io(&path, errno.into())),
            }
        }
        Ok(DirLock { _file: file })
    }
}

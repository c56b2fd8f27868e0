//! The one switch between std and loom synchronization primitives.
//!
//! Every module that shares state between threads imports its atomics and locks
//! from here, never from `std` directly, so that building with
//! `RUSTFLAGS="--cfg omnistock_loom"` puts the whole engine under the loom model
//! checker. Locks never poison: a panic while holding one is a bug elsewhere
//! and the protected data stays consistent by construction (every critical
//! section is a handful of infallible updates).

#[cfg(not(omnistock_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(omnistock_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// One round of waiting for another thread to finish a step of a few
/// instructions (a cell claimed by a multi-line cart): a spin hint for the
/// first rounds, then a yield of the time slice, so that a waiter does not
/// burn the core the claimant was preempted from. Under loom every round
/// yields, so the model checker runs the other thread.
pub(crate) fn wait_a_little(rounds: &mut u32) {
    #[cfg(not(omnistock_loom))]
    {
        if *rounds < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        *rounds = rounds.saturating_add(1);
    }
    #[cfg(omnistock_loom)]
    {
        *rounds = rounds.saturating_add(1);
        loom::thread::yield_now();
    }
}

/// A mutual-exclusion lock: parking_lot's in production, loom's under the
/// model checker. `lock()` returns the guard directly (no poisoning).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(omnistock_loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(omnistock_loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(omnistock_loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(omnistock_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(omnistock_loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(omnistock_loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(omnistock_loom))]
        {
            self.inner.lock()
        }
        #[cfg(omnistock_loom)]
        {
            self.inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }
}

/// A reader-writer lock, switched like [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct RwLock<T> {
    #[cfg(not(omnistock_loom))]
    inner: parking_lot::RwLock<T>,
    #[cfg(omnistock_loom)]
    inner: loom::sync::RwLock<T>,
}

#[cfg(not(omnistock_loom))]
pub(crate) type ReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
#[cfg(omnistock_loom)]
pub(crate) type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
#[cfg(not(omnistock_loom))]
pub(crate) type WriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;
#[cfg(omnistock_loom)]
pub(crate) type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        RwLock {
            #[cfg(not(omnistock_loom))]
            inner: parking_lot::RwLock::new(value),
            #[cfg(omnistock_loom)]
            inner: loom::sync::RwLock::new(value),
        }
    }

    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        #[cfg(not(omnistock_loom))]
        {
            self.inner.read()
        }
        #[cfg(omnistock_loom)]
        {
            self.inner
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        #[cfg(not(omnistock_loom))]
        {
            self.inner.write()
        }
        #[cfg(omnistock_loom)]
        {
            self.inner
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }
}

//! The one switch between std and loom synchronization primitives.
//!
//! Every module that shares state between threads imports its atomics and locks
//! from here, never from `std` directly, so that building with
//! `RUSTFLAGS="--cfg omnistock_loom"` puts the whole engine under the loom model
//! checker. Locks never poison: a panic while holding one is a bug elsewhere
//! and the protected data stays consistent by construction (every critical
//! section is a handful of infallible updates).

#[cfg(not(omnistock_loom))]
#[cfg_attr(not(feature = "journal"), allow(unused_imports))]
pub(crate) use std::sync::atomic::fence;
#[cfg(not(omnistock_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(omnistock_loom)]
#[cfg_attr(not(feature = "journal"), allow(unused_imports))]
pub(crate) use loom::sync::atomic::fence;

#[cfg(omnistock_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(omnistock_loom)]
#[cfg_attr(not(feature = "journal"), allow(unused_imports))]
pub(crate) use loom::thread::{current as current_thread, park, Thread};
#[cfg(not(omnistock_loom))]
#[cfg_attr(not(feature = "journal"), allow(unused_imports))]
pub(crate) use std::thread::{current as current_thread, park, Thread};

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

/// A condition variable paired with [`Mutex`], switched like it.
/// `wait` takes the guard and gives it back (no poisoning).
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "journal"), allow(dead_code))]
pub(crate) struct Condvar {
    #[cfg(not(omnistock_loom))]
    inner: parking_lot::Condvar,
    #[cfg(omnistock_loom)]
    inner: loom::sync::Condvar,
}

#[cfg_attr(not(feature = "journal"), allow(dead_code))]
impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar {
            #[cfg(not(omnistock_loom))]
            inner: parking_lot::Condvar::new(),
            #[cfg(omnistock_loom)]
            inner: loom::sync::Condvar::new(),
        }
    }

    /// Releases the lock, waits for a notification (or a spurious wakeup)
    /// and takes the lock again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(not(omnistock_loom))]
        {
            let mut guard = guard;
            self.inner.wait(&mut guard);
            guard
        }
        #[cfg(omnistock_loom)]
        {
            self.inner
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// Like [`Condvar::wait`], giving up after `timeout`.
    pub(crate) fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        #[cfg(not(omnistock_loom))]
        {
            let mut guard = guard;
            self.inner.wait_for(&mut guard, timeout);
            guard
        }
        #[cfg(omnistock_loom)]
        {
            match self.inner.wait_timeout(guard, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            }
        }
    }

    pub(crate) fn notify_one(&self) {
        self.inner.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.inner.notify_all();
    }
}

//! Injected time. The engine never reads the system time itself: it asks a
//! [`Clock`], so tests, the replay tool and simulations drive time by hand
//! with a [`ManualClock`]. Time is an input to the engine rather than state it
//! shares, so this module uses std atomics even under the loom model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of milliseconds. Must never go backwards.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the clock's epoch.
    fn now_ms(&self) -> u64;

    /// Recovery found that the clock had reached `now_ms` before a
    /// restart: a clock driven by hand moves there (never backwards); a
    /// clock that reads real time ignores it, as the default does.
    fn recovered(&self, now_ms: u64) {
        let _ = now_ms;
    }
}

/// Wall-clock milliseconds since the Unix epoch, never going backwards even
/// if the system time is stepped back.
#[derive(Debug, Default)]
pub struct SystemClock {
    last: AtomicU64,
}

impl SystemClock {
    /// A clock reading the system time.
    pub fn new() -> Self {
        SystemClock::default()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        // Monotonic across system time steps, without a shared write per
        // read: the last time is only raised when the wall clock passed it
        // (at most once per millisecond per thread).
        let last = self.last.load(Ordering::Relaxed);
        if wall > last {
            self.last.fetch_max(wall, Ordering::Relaxed).max(wall)
        } else {
            last
        }
    }
}

/// A clock that moves only when told to; starts at 0 unless given a start.
///
/// ```
/// use omnistock::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// clock.advance(1_000);
/// assert_eq!(clock.now_ms(), 1_000);
/// clock.advance(u64::MAX); // saturates instead of wrapping
/// assert_eq!(clock.now_ms(), u64::MAX);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock at 0 ms.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// A clock at `ms`.
    pub fn starting_at(ms: u64) -> Self {
        ManualClock {
            now: AtomicU64::new(ms),
        }
    }

    /// Moves time forward by `ms`, saturating at `u64::MAX`; returns the new time.
    pub fn advance(&self, ms: u64) -> u64 {
        let mut current = self.now.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(ms);
            match self
                .now
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    /// Sets the time to `ms` if that is not earlier than now; returns the time.
    pub fn set(&self, ms: u64) -> u64 {
        let previous = self.now.fetch_max(ms, Ordering::AcqRel);
        previous.max(ms)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    fn recovered(&self, now_ms: u64) {
        self.set(now_ms);
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }

    fn recovered(&self, now_ms: u64) {
        (**self).recovered(now_ms);
    }
}

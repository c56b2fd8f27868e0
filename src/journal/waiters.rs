//! Threads waiting for a durable watermark (`Order::wait_durable`): each
//! parks its own thread in a list; the writer, after moving the watermark,
//! takes the waiters it covers and wakes them as a tree (it unparks
//! [`WAKE_FANOUT`], each woken waiter as many more before it returns), so
//! it is back at its next batch after a couple of `unpark` calls and no
//! woken thread takes a lock another must wait for. No I/O, only
//! `crate::sync` primitives: the loom model (tests/loom_journal.rs) runs it.
//!
//! Invariants:
//! - No lost wakeup: a waiter checks whether it is done (the watermark, or
//!   the journal stopped) under the list lock before it registers; the
//!   writer stores the watermark before it takes that lock to wake.
//! - No stray unpark: a waiter returns only at `WOKEN`, which its waker
//!   stores after `unpark` returned, so no unpark reaches a thread that has
//!   moved on (to a `join`, a lock, another wait).

use crate::sync::{current_thread, park, wait_a_little, AtomicU8, Mutex, Ordering, Thread};
use std::sync::Arc;

/// The writer wakes this many waiters of a batch, and each woken waiter
/// as many more.
const WAKE_FANOUT: usize = 2;

const WAITING: u8 = 0;
const WAKING: u8 = 1;
const WOKEN: u8 = 2;

/// One waiting call, as its waker sees it: the thread to unpark, how far
/// its wake-up got, and the waiters it wakes in turn before it returns.
#[derive(Debug)]
struct Waiter {
    thread: Thread,
    state: AtomicU8,
    children: Mutex<Vec<Arc<Waiter>>>,
}

impl Waiter {
    fn wake(&self) {
        self.state.store(WAKING, Ordering::Release);
        self.thread.unpark();
        self.state.store(WOKEN, Ordering::Release);
    }
}

/// The list of parked waiters, each with the seq it waits for.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    list: Mutex<Vec<(u64, Arc<Waiter>)>>,
}

impl Waiters {
    /// Parks the calling thread until [`wake`](Self::wake) covers `seq`,
    /// unless `done()`, checked under the list lock, says there is nothing
    /// to wait for.
    pub(super) fn wait(&self, seq: u64, done: impl Fn() -> bool) {
        let waiter = Arc::new(Waiter {
            thread: current_thread(),
            state: AtomicU8::new(WAITING),
            children: Mutex::new(Vec::new()),
        });
        {
            let mut list = self.list.lock();
            if done() {
                return;
            }
            list.push((seq, waiter.clone()));
        }
        // A park may end early (an unpark token left by an earlier wait):
        // the state says whether this one was woken.
        let mut rounds = 0;
        loop {
            match waiter.state.load(Ordering::Acquire) {
                WOKEN => break,
                WAKING => wait_a_little(&mut rounds),
                _ => park(),
            }
        }
        let children = std::mem::take(&mut *waiter.children.lock());
        for child in children {
            child.wake();
        }
    }

    /// Wakes the waiters for a seq at or below `durable` (every one with
    /// `all`). Call it after storing what their `done` reads.
    pub(super) fn wake(&self, durable: u64, all: bool) {
        let mut woken = Vec::new();
        self.list.lock().retain(|(seq, waiter)| {
            let covered = all || *seq <= durable;
            if covered {
                woken.push(waiter.clone());
            }
            !covered
        });
        // Waiter i wakes waiters FANOUT * (i + 1) .. FANOUT * (i + 2).
        for (i, waiter) in woken.iter().enumerate() {
            let first = WAKE_FANOUT * (i + 1);
            if first < woken.len() {
                let last = (first + WAKE_FANOUT).min(woken.len());
                *waiter.children.lock() = woken[first..last].to_vec();
            }
        }
        for waiter in woken.iter().take(WAKE_FANOUT) {
            waiter.wake();
        }
    }
}

//! The ordering step between appenders and the writer thread: the reorder
//! buffer, the written and durable watermarks, and every wait on them.
//! No I/O here, only `crate::sync` primitives, so the loom model
//! (tests/loom_journal.rs) runs this very code.
//!
//! Invariants:
//! - Records reach the writer (`take`) strictly in seq order and densely:
//!   a record above a missing seq waits in `early` until the gap fills.
//! - `written` and `durable` only grow, and only to the last seq of a batch
//!   the writer finished: every seq at or below them was written (synced)
//!   in order, so a waiter released at `seq` has everything below on disk.
//! - A writer error is sticky: after `fail`, no waiter is told "durable"
//!   for a seq the watermarks had not reached.
//! - Backpressure: an append waits while `max_records` records (or
//!   `max_bytes` payload bytes) are appended but not yet written, or while
//!   its seq is more than `max_records` above the lowest missing one; the
//!   append of the lowest missing seq never waits, so the queue always
//!   drains and no set of blocked appenders can wait for each other.

use super::error::JournalError;
use super::format::MAX_PAYLOAD;
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use std::collections::{BTreeMap, VecDeque};
use std::task::Waker;
use std::time::Duration;

/// The reorder buffer and watermarks shared by appenders, waiters and the
/// writer (see the module doc for its invariants).
#[derive(Debug)]
pub struct Order {
    state: Mutex<State>,
    /// The writer waits here for records, a sync request or closing.
    work: Condvar,
    /// Appenders held back by backpressure wait here.
    space: Condvar,
    /// `sync` waits here.
    progress: Condvar,
    /// `wait_durable` waits on `durable_changed` with this lock, not the
    /// state's: the many threads woken after an fsync then take this
    /// short lock in turn, and never hold up appenders or the writer.
    waiting: Mutex<()>,
    durable_changed: Condvar,
    /// Set (under the state lock) once the journal failed or closed:
    /// `wait_durable` then reads its answer from the state.
    stopped: AtomicBool,
    written: AtomicU64,
    durable: AtomicU64,
    /// In `Durability::None` a record counts as durable once written.
    durable_when_written: bool,
    max_records: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct State {
    /// The lowest seq not yet moved to `ready` (the lowest missing one).
    next: u64,
    /// `early[i]` holds seq `next + i` if it was appended; `early[0]` is
    /// always empty (it would have moved to `ready`).
    early: VecDeque<Option<Vec<u8>>>,
    /// Records `ready_first..next`, in order, for the writer to take.
    ready: Vec<Vec<u8>>,
    ready_first: u64,
    /// Appended and not yet written: records and payload bytes.
    queued_records: usize,
    queued_bytes: usize,
    /// Appenders waiting in `space`.
    blocked: usize,
    /// The writer is waiting in `work`.
    writer_idle: bool,
    written: u64,
    synced: u64,
    durable: u64,
    /// `sync()` asks for an fsync through this seq.
    sync_target: u64,
    error: Option<JournalError>,
    closing: bool,
    closed: bool,
    wakers: BTreeMap<u64, (u64, Waker)>,
    next_token: u64,
}

/// What [`Order::take`] handed the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The seq of the first record taken (when any were).
    pub first: u64,
    /// How many records were taken.
    pub records: usize,
    /// An fsync is asked for through this seq (`sync()`); 0 when none.
    pub sync_target: u64,
    /// The journal is closing: write what was taken, sync, call `closed`.
    pub closing: bool,
    /// A sticky error is set: the writer should stop.
    pub failed: bool,
}

impl Order {
    /// An empty buffer whose next expected seq is `last_seq + 1`.
    pub fn new(
        last_seq: u64,
        durable_when_written: bool,
        max_records: usize,
        max_bytes: usize,
    ) -> Order {
        Order {
            state: Mutex::new(State {
                next: last_seq + 1,
                early: VecDeque::new(),
                ready: Vec::new(),
                ready_first: last_seq + 1,
                queued_records: 0,
                queued_bytes: 0,
                blocked: 0,
                writer_idle: false,
                written: last_seq,
                synced: last_seq,
                durable: last_seq,
                sync_target: 0,
                error: None,
                closing: false,
                closed: false,
                wakers: BTreeMap::new(),
                next_token: 0,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            progress: Condvar::new(),
            waiting: Mutex::new(()),
            durable_changed: Condvar::new(),
            stopped: AtomicBool::new(false),
            written: AtomicU64::new(last_seq),
            durable: AtomicU64::new(last_seq),
            durable_when_written,
            max_records: max_records.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Hands over record `seq`. Waits only for backpressure (see the module
    /// doc). A seq appended twice or at or below the start sets a sticky
    /// [`JournalError::Sequence`]; after an error or closing, the record is
    /// dropped.
    pub fn append(&self, seq: u64, payload: Vec<u8>) {
        let len = payload.len();
        let mut st = self.state.lock();
        let index = loop {
            if st.error.is_some() || st.closing {
                return;
            }
            if seq < st.next {
                let reason = "seq already appended (or at or below the journal's last seq at open)";
                self.fail_locked(&mut st, JournalError::Sequence { seq, reason });
                return;
            }
            let index = seq - st.next;
            if index < st.early.len() as u64 && st.early[index as usize].is_some() {
                let reason = "seq appended twice";
                self.fail_locked(&mut st, JournalError::Sequence { seq, reason });
                return;
            }
            let full = st.queued_records >= self.max_records
                || st.queued_bytes >= self.max_bytes
                || index > self.max_records as u64;
            if index == 0 || !full {
                break index as usize;
            }
            st.blocked += 1;
            st = self.space.wait(st);
            st.blocked -= 1;
        };
        if len > MAX_PAYLOAD {
            self.fail_locked(&mut st, JournalError::TooLarge { seq, len });
            return;
        }
        st.queued_records += 1;
        st.queued_bytes += len;
        if index != 0 {
            if st.early.len() <= index {
                st.early.resize_with(index + 1, || None);
            }
            st.early[index] = Some(payload);
            return;
        }
        if st.ready.is_empty() {
            st.ready_first = seq;
        }
        st.ready.push(payload);
        st.next += 1;
        if !st.early.is_empty() {
            st.early.pop_front();
            while let Some(Some(_)) = st.early.front() {
                let record = st.early.pop_front().flatten().expect("checked Some");
                st.ready.push(record);
                st.next += 1;
            }
        }
        if st.writer_idle {
            self.work.notify_one();
        }
        if st.blocked > 0 {
            // The lowest missing seq moved: its appender may be waiting.
            self.space.notify_all();
        }
    }

    /// The writer's side: waits until records are ready, a sync is asked
    /// for, the journal closes or fails, or `timeout` passes (`None`:
    /// no timeout), then swaps the ready records into `out` (which must
    /// be empty).
    pub fn take(&self, out: &mut Vec<Vec<u8>>, timeout: Option<Duration>) -> Batch {
        debug_assert!(out.is_empty());
        let mut st = self.state.lock();
        let mut waited = false;
        while st.ready.is_empty()
            && !st.closing
            && st.error.is_none()
            && st.sync_target <= st.synced
            && !(waited && timeout.is_some())
        {
            st.writer_idle = true;
            st = match timeout {
                None => self.work.wait(st),
                Some(timeout) => self.work.wait_for(st, timeout),
            };
            st.writer_idle = false;
            waited = true;
        }
        std::mem::swap(out, &mut st.ready);
        Batch {
            first: st.ready_first,
            records: out.len(),
            sync_target: st.sync_target,
            closing: st.closing,
            failed: st.error.is_some(),
        }
    }

    /// The writer wrote (to the OS) every record through `through`:
    /// `records` records of `bytes` payload bytes since its last call.
    pub fn written(&self, through: u64, records: usize, bytes: usize) {
        let mut st = self.state.lock();
        st.queued_records -= records;
        st.queued_bytes -= bytes;
        st.written = through;
        self.written.store(through, Ordering::Release);
        if st.blocked > 0 {
            self.space.notify_all();
        }
        if self.durable_when_written {
            self.publish_durable(st, through);
        }
    }

    /// The writer synced (fdatasync) every record through `through`.
    pub fn synced(&self, through: u64) {
        let mut st = self.state.lock();
        st.synced = st.synced.max(through);
        if self.durable_when_written {
            // Durable already at `written`; wake `sync()` callers.
            drop(st);
            self.progress.notify_all();
        } else {
            self.publish_durable(st, through);
        }
    }

    fn publish_durable(&self, mut st: MutexGuard<'_, State>, through: u64) {
        if through > st.durable {
            st.durable = through;
            self.durable.store(through, Ordering::Release);
        }
        let mut ready = Vec::new();
        if !st.wakers.is_empty() {
            st.wakers.retain(|_, (seq, waker)| {
                let done = *seq <= through;
                if done {
                    ready.push(waker.clone());
                }
                !done
            });
        }
        drop(st);
        self.progress.notify_all();
        self.wake_durable_waiters();
        for waker in ready {
            waker.wake();
        }
    }

    /// Sets the sticky error (the first one wins) and wakes everyone.
    pub fn fail(&self, error: JournalError) {
        let mut st = self.state.lock();
        self.fail_locked(&mut st, error);
    }

    fn fail_locked(&self, st: &mut State, error: JournalError) {
        if st.error.is_none() {
            st.error = Some(error);
        }
        // Nothing more will be written: free the queued payloads.
        st.early.clear();
        self.wake_all(st);
    }

    fn wake_all(&self, st: &mut State) {
        if st.error.is_some() || st.closed {
            self.stopped.store(true, Ordering::Release);
        }
        for (_, (_, waker)) in std::mem::take(&mut st.wakers) {
            waker.wake();
        }
        self.work.notify_all();
        self.space.notify_all();
        self.progress.notify_all();
        self.wake_durable_waiters();
    }

    /// Wakes every `wait_durable` waiter, after `durable` or `stopped`
    /// was stored: taking `waiting` first means a waiter that read the old
    /// value under it is already waiting, so the notification reaches it.
    fn wake_durable_waiters(&self) {
        drop(self.waiting.lock());
        self.durable_changed.notify_all();
    }

    /// Asks the writer to write what is ready, sync and stop.
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.closing = true;
        self.wake_all(&mut st);
    }

    /// The writer stopped: waiters still waiting get `Closed` (or the error).
    pub fn closed(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.early.clear();
        self.wake_all(&mut st);
    }

    /// Highest seq written to the OS.
    pub fn written_seq(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Highest seq durable (synced; written, in `Durability::None`).
    pub fn durable_seq(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Blocks until `seq` and every seq below it are durable, or the writer
    /// failed, or the journal closed first.
    pub fn wait_durable(&self, seq: u64) -> Result<(), JournalError> {
        if self.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let mut waiting = self.waiting.lock();
        loop {
            if self.durable.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            if self.stopped.load(Ordering::Acquire) {
                drop(waiting);
                let st = self.state.lock();
                if st.durable >= seq {
                    return Ok(());
                }
                return Err(st.error.clone().unwrap_or(JournalError::Closed));
            }
            waiting = self.durable_changed.wait(waiting);
        }
    }

    /// Asks for an fsync of every record appended so far (the contiguous
    /// prefix) and waits for it; returns the seq synced through, or the
    /// sticky error once there is one.
    pub fn sync(&self) -> Result<u64, JournalError> {
        let mut st = self.state.lock();
        let target = st.next - 1;
        if st.synced < target {
            st.sync_target = st.sync_target.max(target);
            if st.writer_idle {
                self.work.notify_one();
            }
        }
        loop {
            if let Some(error) = &st.error {
                return Err(error.clone());
            }
            if st.synced >= target {
                return Ok(st.synced);
            }
            if st.closed {
                return Err(JournalError::Closed);
            }
            st = self.progress.wait(st);
        }
    }

    /// The future's poll: `Some` when done, else registers `waker` under
    /// `token` (0: none yet; a new token is written back).
    pub fn poll_durable(
        &self,
        seq: u64,
        token: &mut u64,
        waker: &Waker,
    ) -> Option<Result<(), JournalError>> {
        if self.durable.load(Ordering::Acquire) >= seq {
            return Some(Ok(()));
        }
        let mut st = self.state.lock();
        if st.durable >= seq {
            return Some(Ok(()));
        }
        if let Some(error) = &st.error {
            return Some(Err(error.clone()));
        }
        if st.closed {
            return Some(Err(JournalError::Closed));
        }
        if *token == 0 {
            st.next_token += 1;
            *token = st.next_token;
        }
        match st.wakers.get_mut(token) {
            Some((_, registered)) if registered.will_wake(waker) => {}
            _ => {
                st.wakers.insert(*token, (seq, waker.clone()));
            }
        }
        None
    }

    /// A dropped future's registration goes away.
    pub fn forget_waker(&self, token: u64) {
        if token != 0 {
            self.state.lock().wakers.remove(&token);
        }
    }

    /// Records appended and not yet written (for tests of backpressure).
    pub fn queued_records(&self) -> usize {
        self.state.lock().queued_records
    }
}

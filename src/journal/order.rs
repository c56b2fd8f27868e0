//! The ordering step between appenders and the writer thread: the ring of
//! record slots, the written and durable watermarks, and every wait on them.
//! No I/O here, only `crate::sync` primitives, so the loom model
//! (tests/loom_journal.rs) runs this very code.
//!
//! An append takes no shared lock: record `seq` goes into slot
//! `seq % ring` (a lock of its own, shared only with the writer), and the
//! writer collects slots in seq order, stopping at the first one not yet
//! filled. One global lock per append made 64 appenders on 2 cores queue and
//! park on it; the slots removed that (see `docs/PERFORMANCE.md`).
//!
//! Invariants:
//! - Records reach the writer (`take`) strictly in seq order and densely:
//!   a record above a missing seq waits in its slot until the gap fills.
//! - A slot is reused (by `seq + ring`) only after `seq` was written: an
//!   append waits while its seq is more than `window` (at most the ring's
//!   size) above the written watermark.
//! - `written` and `durable` only grow, and only to the last seq of a batch
//!   the writer finished: every seq at or below them was written (synced)
//!   in order, so a waiter released at `seq` has everything below on disk.
//! - No lost wakeup of the idle writer: it announces `writer_idle`, then
//!   looks at the next slot again; an appender fills its slot, then reads
//!   `writer_idle`; a SeqCst fence on both sides makes at least one of them
//!   see the other.
//! - A writer error is sticky: after `fail`, no waiter is told "durable"
//!   for a seq the watermarks had not reached.
//! - Backpressure never deadlocks: the lowest missing seq is always within
//!   the window of the written watermark once the writer has written the
//!   records below it, which are contiguous; the byte budget never holds
//!   back the seq right after the last one collected.

use super::error::JournalError;
use super::format::MAX_PAYLOAD;
use super::waiters::Waiters;
use crate::sync::{fence, AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Duration;

/// The most slots a ring holds (64-byte slots: 4 MiB).
pub const MAX_RING: usize = 1 << 16;

/// The ring is allocated in chunks of at most this many slots (64 KiB):
/// one 4 MiB block per journal, freed when it closes, made glibc's malloc
/// raise its mmap threshold and keep such blocks on the heap, where a
/// process opening many journals in turn (the recovery fuzz target) grew
/// by gigabytes.
const CHUNK_SLOTS: usize = 1 << 10;

/// Payloads this large or larger count against the byte budget
/// (`max_bytes`); smaller ones are bounded by the window alone.
pub const BIG_PAYLOAD: usize = 1024;

/// Payload bytes a ring slot holds in place: an append of a payload this
/// long or shorter allocates nothing, and the writer frees nothing.
pub const INLINE_PAYLOAD: usize = 46;

/// One record's place in the ring.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    /// The seq whose record the slot holds or held last (0: none yet).
    /// Stored, under `record`'s lock, after the record.
    seq: AtomicU64,
    record: Mutex<Payload>,
}

// A slot is one cache line (outside loom, whose locks are larger).
#[cfg(not(omnistock_loom))]
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// A record in its slot: in place when short, else in a buffer of its own.
#[derive(Debug, Default)]
enum Payload {
    #[default]
    Empty,
    Inline {
        len: u8,
        bytes: [u8; INLINE_PAYLOAD],
    },
    Heap(Vec<u8>),
}

impl Payload {
    fn of(payload: &[u8]) -> Payload {
        if payload.len() <= INLINE_PAYLOAD {
            let mut bytes = [0u8; INLINE_PAYLOAD];
            bytes[..payload.len()].copy_from_slice(payload);
            Payload::Inline {
                len: payload.len() as u8,
                bytes,
            }
        } else {
            Payload::Heap(payload.to_vec())
        }
    }

    /// The bytes, or `None` for an empty slot.
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Empty => None,
            Payload::Inline { len, bytes } => Some(&bytes[..usize::from(*len)]),
            Payload::Heap(bytes) => Some(bytes),
        }
    }
}

/// Records collected for the writer, in seq order, their payloads back to
/// back in one buffer (kept from batch to batch: collecting allocates
/// only while the batches grow).
#[derive(Debug, Default)]
pub struct Ready {
    bytes: Vec<u8>,
    /// Where each payload ends in `bytes`.
    ends: Vec<usize>,
}

impl Ready {
    /// How many records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Drops every record, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// The payloads, in seq order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }

    fn push(&mut self, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push(self.bytes.len());
    }
}

/// The ring, the watermarks and the waits shared by appenders, waiters and
/// the writer (see the module doc for its invariants).
#[derive(Debug)]
pub struct Order {
    state: Mutex<State>,
    /// The ring's slots, in chunks of `1 << chunk_bits`.
    ring: Box<[Box<[Slot]>]>,
    chunk_bits: u32,
    /// The ring's length (a power of two) less one.
    mask: u64,
    /// An append waits while its seq is above `written + window`.
    window: u64,
    /// The last seq at open: appends start above it.
    start: u64,
    /// The writer waits here for records, a sync request or closing.
    work: Condvar,
    /// Set by the writer (under the state lock) before it waits in `work`.
    writer_idle: AtomicBool,
    /// Appenders held back by backpressure wait here.
    space: Condvar,
    /// `sync` waits here.
    progress: Condvar,
    /// Threads parked in `wait_durable` (see `waiters.rs`).
    waiters: Waiters,
    /// Set (under the state lock) once the journal failed or closed:
    /// `wait_durable` then reads its answer from the state.
    stopped: AtomicBool,
    /// Set (under the state lock) once the journal failed or is closing:
    /// appends are dropped.
    halted: AtomicBool,
    /// The last seq collected from the ring (the state's `next - 1`).
    collected: AtomicU64,
    written: AtomicU64,
    durable: AtomicU64,
    /// Bytes of payloads of at least [`BIG_PAYLOAD`] appended, not yet written.
    queued_big: AtomicU64,
    /// In `Durability::None` a record counts as durable once written.
    durable_when_written: bool,
    max_bytes: u64,
}

#[derive(Debug)]
struct State {
    /// The lowest seq not yet collected from the ring.
    next: u64,
    /// Records `ready_first..next`, in order, for the writer to take.
    ready: Ready,
    ready_first: u64,
    /// Big-payload bytes collected since the writer's last `written`.
    collected_big: u64,
    /// Appenders waiting in `space`.
    blocked: usize,
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
    /// An empty order whose next expected seq is `last_seq + 1`. At most
    /// `max_records` (capped at [`MAX_RING`]) seqs past the last one
    /// written may be appended, and `max_bytes` of big payloads.
    pub fn new(
        last_seq: u64,
        durable_when_written: bool,
        max_records: usize,
        max_bytes: usize,
    ) -> Order {
        let window = max_records.clamp(1, MAX_RING);
        let slots = window.next_power_of_two();
        let chunk = slots.min(CHUNK_SLOTS);
        let ring: Box<[Box<[Slot]>]> = (0..slots / chunk)
            .map(|_| (0..chunk).map(|_| Slot::default()).collect())
            .collect();
        Order {
            state: Mutex::new(State {
                next: last_seq + 1,
                ready: Ready::default(),
                ready_first: last_seq + 1,
                collected_big: 0,
                blocked: 0,
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
            mask: slots as u64 - 1,
            chunk_bits: chunk.trailing_zeros(),
            ring,
            window: window as u64,
            start: last_seq,
            work: Condvar::new(),
            writer_idle: AtomicBool::new(false),
            space: Condvar::new(),
            progress: Condvar::new(),
            waiters: Waiters::default(),
            stopped: AtomicBool::new(false),
            halted: AtomicBool::new(false),
            collected: AtomicU64::new(last_seq),
            written: AtomicU64::new(last_seq),
            durable: AtomicU64::new(last_seq),
            queued_big: AtomicU64::new(0),
            durable_when_written,
            max_bytes: max_bytes.max(1) as u64,
        }
    }

    fn slot(&self, seq: u64) -> &Slot {
        let index = (seq & self.mask) as usize;
        let within = index & ((1 << self.chunk_bits) - 1);
        &self.ring[index >> self.chunk_bits][within]
    }

    /// Whether record `seq` of `len` bytes may go into the ring now.
    fn has_room(&self, seq: u64, len: usize) -> bool {
        let written = self.written.load(Ordering::Acquire);
        if seq > written + self.window {
            return false;
        }
        len < BIG_PAYLOAD
            || self.queued_big.load(Ordering::Acquire) < self.max_bytes
            || seq <= self.collected.load(Ordering::Acquire) + 1
    }

    /// Hands over record `seq`. Waits only for backpressure (see the module
    /// doc). A seq appended twice or at or below the start sets a sticky
    /// [`JournalError::Sequence`]; after an error or closing, the record is
    /// dropped.
    pub fn append(&self, seq: u64, payload: &[u8]) {
        let len = payload.len();
        if self.halted.load(Ordering::Acquire) {
            return;
        }
        if seq <= self.start {
            let reason = "seq at or below the journal's last seq at open";
            self.fail(JournalError::Sequence { seq, reason });
            return;
        }
        if len > MAX_PAYLOAD {
            self.fail(JournalError::TooLarge { seq, len });
            return;
        }
        if !self.has_room(seq, len) && !self.wait_for_room(seq, len) {
            return;
        }
        let slot = self.slot(seq);
        {
            let mut record = slot.record.lock();
            // The slot holds `seq` (or held it, collected), or a later seq
            // reused it, which needs `seq` written: appended before.
            if slot.seq.load(Ordering::Acquire) >= seq {
                drop(record);
                let reason = "seq appended twice";
                self.fail(JournalError::Sequence { seq, reason });
                return;
            }
            if len >= BIG_PAYLOAD {
                self.queued_big.fetch_add(len as u64, Ordering::AcqRel);
            }
            *record = Payload::of(payload);
            slot.seq.store(seq, Ordering::Release);
        }
        // Pairs with the fence in `take`: either the writer sees this slot
        // filled, or this thread sees it idle and wakes it.
        fence(Ordering::SeqCst);
        if self.writer_idle.load(Ordering::Relaxed) {
            let _st = self.state.lock();
            self.work.notify_one();
        }
    }

    /// Waits until `seq` has room (true) or the journal halted (false).
    fn wait_for_room(&self, seq: u64, len: usize) -> bool {
        let mut st = self.state.lock();
        st.blocked += 1;
        let room = loop {
            if st.error.is_some() || st.closing {
                break false;
            }
            if self.has_room(seq, len) {
                break true;
            }
            st = self.space.wait(st);
        };
        st.blocked -= 1;
        room
    }

    /// Moves the records filled in order from slot `next` on into `ready`.
    fn collect(&self, st: &mut State) {
        loop {
            let slot = self.slot(st.next);
            if slot.seq.load(Ordering::Acquire) != st.next {
                break;
            }
            let record = std::mem::take(&mut *slot.record.lock());
            let Some(bytes) = record.bytes() else {
                break;
            };
            if bytes.len() >= BIG_PAYLOAD {
                st.collected_big += bytes.len() as u64;
            }
            if st.ready.is_empty() {
                st.ready_first = st.next;
            }
            st.ready.push(bytes);
            st.next += 1;
        }
        self.collected.store(st.next - 1, Ordering::Release);
    }

    /// The writer's side: waits until records are ready, a sync is asked
    /// for, the journal closes or fails, or `timeout` passes (`None`:
    /// no timeout), then swaps the ready records into `out` (which must
    /// be empty; its buffers are kept for the next batch).
    pub fn take(&self, out: &mut Ready, timeout: Option<Duration>) -> Batch {
        debug_assert!(out.is_empty());
        let mut st = self.state.lock();
        let mut waited = false;
        loop {
            self.collect(&mut st);
            if !st.ready.is_empty()
                || st.closing
                || st.error.is_some()
                || st.sync_target > st.synced
                || (waited && timeout.is_some())
            {
                break;
            }
            self.writer_idle.store(true, Ordering::Relaxed);
            // Pairs with the fence in `append` (see the module doc).
            fence(Ordering::SeqCst);
            if self.slot(st.next).seq.load(Ordering::Acquire) == st.next {
                self.writer_idle.store(false, Ordering::Relaxed);
                continue;
            }
            st = match timeout {
                None => self.work.wait(st),
                Some(timeout) => self.work.wait_for(st, timeout),
            };
            self.writer_idle.store(false, Ordering::Relaxed);
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

    /// The writer wrote (to the OS) every record through `through`: every
    /// record it took so far.
    pub fn written(&self, through: u64) {
        let mut st = self.state.lock();
        let big = std::mem::take(&mut st.collected_big);
        if big > 0 {
            self.queued_big.fetch_sub(big, Ordering::AcqRel);
        }
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
        // Nothing more will be written: drop what waits.
        st.ready.clear();
        self.wake_all(st);
    }

    fn wake_all(&self, st: &mut State) {
        self.halted.store(true, Ordering::Release);
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

    /// Wakes the `wait_durable` waiters the durable watermark now covers
    /// (every one once `stopped`), after `durable` or `stopped` was stored:
    /// a waiter registers under `waiters` and reads both again there, so
    /// it either sees the new value or is in the list.
    fn wake_durable_waiters(&self) {
        let durable = self.durable.load(Ordering::Acquire);
        let stopped = self.stopped.load(Ordering::Acquire);
        self.waiters.wake(durable, stopped);
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
        self.wake_all(&mut st);
    }

    /// The sticky error, once the writer failed (one load until then).
    pub fn error(&self) -> Option<JournalError> {
        if !self.halted.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().error.clone()
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
        self.waiters.wait(seq, || {
            self.durable.load(Ordering::Acquire) >= seq || self.stopped.load(Ordering::Acquire)
        });
        if self.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let st = self.state.lock();
        if st.durable >= seq {
            return Ok(());
        }
        Err(st.error.clone().unwrap_or(JournalError::Closed))
    }

    /// Asks for an fsync of every record appended so far (the contiguous
    /// prefix) and waits for it; returns the seq synced through, or the
    /// sticky error once there is one.
    pub fn sync(&self) -> Result<u64, JournalError> {
        let mut st = self.state.lock();
        self.collect(&mut st);
        let target = st.next - 1;
        if st.synced < target {
            st.sync_target = st.sync_target.max(target);
            self.work.notify_one();
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
        let st = self.state.lock();
        let collected = (st.next - 1 - st.written) as usize;
        let in_ring = self
            .ring
            .iter()
            .flat_map(|chunk| chunk.iter())
            .filter(|slot| slot.seq.load(Ordering::Acquire) >= st.next)
            .count();
        collected + in_ring
    }
}

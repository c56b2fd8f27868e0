//! Sequence numbers and the records one operation gathers.
//!
//! [`Sequencer`] hands out the journal's dense sequence numbers; [`Seal`]
//! takes one inside a single cell's claim; [`Steps`] gathers an
//! operation's records (one per step: a lazy expiry and the operation
//! itself are two) and hands them to the [`RecordSink`] after every lock is
//! released, so that no I/O and no wait happens under the engine's locks.

use super::record::{Note, Op, Writer};
use crate::error::Error;
use crate::sync::{AtomicU64, Ordering};
use crate::types::ItemKey;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::fmt;

/// Receives the engine's journal records: one call per record, after the
/// operation released its locks, from any thread and in any order. Every
/// sequence number from the first one handed out upward arrives exactly
/// once. The journal (feature `journal`) is one; a test can keep them in
/// memory.
pub trait RecordSink: Send + Sync + fmt::Debug {
    /// Takes record `seq` (copying `payload`: the engine reuses the buffer
    /// it built the record in). Must not block for long (no disk wait).
    fn append(&self, seq: u64, payload: &[u8]);

    /// Called once per operation that wrote records, after [`append`]ing
    /// them, with the operation's last sequence number: returns once the
    /// operation may be acknowledged (in a `Sync` journal: once every
    /// record up to `seq` is on disk).
    ///
    /// # Errors
    ///
    /// [`Error::NotDurable`] when the records cannot be made durable.
    ///
    /// [`append`]: RecordSink::append
    fn acknowledge(&self, seq: u64) -> Result<(), Error> {
        let _ = seq;
        Ok(())
    }
}

/// The next sequence number to hand out.
#[derive(Debug)]
pub(crate) struct Sequencer {
    next: AtomicU64,
}

impl Sequencer {
    pub(crate) fn starting_at(first: u64) -> Self {
        Sequencer {
            next: AtomicU64::new(first),
        }
    }

    /// Takes the next number: call it while holding everything the step
    /// changes.
    #[inline]
    pub(crate) fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::AcqRel)
    }

    /// Makes `next` the number the next step gets (recovery, before the
    /// inventory is shared).
    pub(crate) fn set(&self, next: u64) {
        self.next.store(next, Ordering::Release);
    }

    /// The number the next step will get.
    pub(crate) fn peek(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }
}

/// A single cell's change, sealed under its claim: the step's sequence
/// number and the cell's post-values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sealed {
    pub(crate) seq: u64,
    pub(crate) on_hand: u32,
    pub(crate) reserved: u32,
    pub(crate) safety: u32,
}

/// Takes a single-cell step's sequence number inside the cell's claim
/// (without a journal it does nothing: one branch).
#[derive(Debug)]
pub(crate) struct Seal<'a> {
    seqs: Option<&'a Sequencer>,
    pub(crate) got: Option<Sealed>,
}

impl<'a> Seal<'a> {
    pub(crate) fn new(seqs: Option<&'a Sequencer>) -> Self {
        Seal { seqs, got: None }
    }

    /// Whether a sequence number will be taken.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.seqs.is_some()
    }

    /// Called with the cell claimed, after the step decided to change it.
    #[inline]
    pub(crate) fn seal(&mut self, on_hand: u32, reserved: u32, safety: u32) {
        if let Some(seqs) = self.seqs {
            self.got = Some(Sealed {
                seq: seqs.take(),
                on_hand,
                reserved,
                safety,
            });
        }
    }
}

thread_local! {
    /// The note `Inventory::with_note` set for this thread's operations.
    static NOTE: RefCell<Option<Note>> = const { RefCell::new(None) };
}

/// Runs `f` with `note` attached to every record this thread writes.
pub(crate) fn with_note<R>(note: &Note, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Note>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            NOTE.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let previous = NOTE.with(|slot| slot.borrow_mut().replace(note.clone()));
    let _restore = Restore(previous);
    f()
}

/// One operation's records, each with its sequence number.
#[derive(Debug)]
pub(crate) struct Steps<'a> {
    pub(crate) seqs: &'a Sequencer,
    sink: &'a dyn RecordSink,
    op: Op,
    note: Option<Note>,
    now: u64,
    done: SmallVec<[(u64, Writer); 1]>,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(seqs: &'a Sequencer, sink: &'a dyn RecordSink, op: Op, now: u64) -> Self {
        Steps {
            seqs,
            sink,
            op,
            note: NOTE.with(|slot| slot.borrow().clone()),
            now,
            done: SmallVec::new(),
        }
    }

    /// Starts the record of step `seq` (its number already taken), made by
    /// `op` at `at_ms` (the operation's time when `None`).
    pub(crate) fn begin(&mut self, seq: u64, op: Option<Op>, at_ms: Option<u64>) {
        let writer = Writer::new(
            op.unwrap_or(self.op),
            at_ms.unwrap_or(self.now),
            self.note.as_ref(),
        );
        self.done.push((seq, writer));
    }

    /// The record being written (the last begun).
    pub(crate) fn current(&mut self) -> &mut Writer {
        &mut self
            .done
            .last_mut()
            .expect("a step's changes follow its sequence number")
            .1
    }

    /// A sealed single-cell step: begins its record with the cell.
    pub(crate) fn sealed(&mut self, item: ItemKey, sealed: Sealed) {
        self.begin(sealed.seq, None, None);
        self.current().item(item, sealed.on_hand, sealed.reserved);
    }

    /// Hands the records to the sink (after every lock is released) and
    /// waits as the sink says.
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        let mut last = None;
        for (seq, writer) in self.done.drain(..) {
            self.sink.append(seq, &writer.out);
            writer.recycle();
            last = Some(seq);
        }
        match last {
            Some(seq) => self.sink.acknowledge(seq),
            None => Ok(()),
        }
    }
}

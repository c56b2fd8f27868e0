//! loom models of the journal's ordering step (`src/journal/order.rs`):
//! records appended out of order by several threads reach the writer
//! strictly in seq order, the durable watermark only ever covers a
//! contiguous prefix the writer finished, no waiter is released before its
//! seq and every seq below it were written, backpressure never deadlocks
//! (the lowest missing seq always gets in), and a writer error is never
//! reported as durability.
//!
//! The writer here is a stand-in for the real thread: it takes batches
//! from the real `Order`, "writes" them to a shared vector (the disk), and
//! publishes the watermarks as the writer does.
//!
//! Run with `RUSTFLAGS="--cfg omnistock_loom" LOOM_MAX_PREEMPTIONS=2 cargo
//! test --release --test loom_journal --target-dir target/loom` (or
//! `bash .ci/run loom`). Without the cfg this file compiles to nothing.
#![cfg(omnistock_loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use omnistock::journal::{JournalError, Order, Ready};

fn record(seq: u64) -> Vec<u8> {
    seq.to_le_bytes().to_vec()
}

/// Writes batches to `disk` until seq `last` is written (or the order
/// failed), checking each batch continues the disk densely.
fn writer(order: Arc<Order>, disk: Arc<Mutex<Vec<u64>>>, last: u64) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut batch = Ready::default();
        let mut written = 0;
        while written < last {
            let taken = order.take(&mut batch, None);
            if taken.failed {
                return;
            }
            if taken.records == 0 {
                continue;
            }
            assert_eq!(taken.first, written + 1, "a batch skipped or repeated seqs");
            {
                let mut disk = disk.lock().unwrap();
                for (i, payload) in batch.iter().enumerate() {
                    let seq = taken.first + i as u64;
                    assert_eq!(payload, &record(seq)[..], "records out of seq order");
                    disk.push(seq);
                }
                batch.clear();
            }
            written += taken.records as u64;
            order.written(written);
            order.synced(written);
        }
    })
}

/// Everything at or below `seq` is on the disk, in order.
fn on_disk_through(disk: &Mutex<Vec<u64>>, seq: u64) {
    let disk = disk.lock().unwrap();
    assert!(
        disk.len() as u64 >= seq,
        "released at {seq} with only {:?} on disk",
        *disk
    );
    for (i, &s) in disk.iter().enumerate() {
        assert_eq!(s, i as u64 + 1);
    }
}

/// Seqs 1..=3 appended by two threads in the order 2 | 3, 1; each waits
/// for its own seqs and checks the disk when released.
#[test]
fn out_of_order_appends_are_written_in_order_and_waiters_wait_for_the_prefix() {
    loom::model(|| {
        let order = Arc::new(Order::new(0, false, 16, 1 << 20));
        let disk = Arc::new(Mutex::new(Vec::new()));
        let writer = writer(order.clone(), disk.clone(), 3);
        let a = {
            let (order, disk) = (order.clone(), disk.clone());
            thread::spawn(move || {
                order.append(2, &record(2));
                order.wait_durable(2).unwrap();
                on_disk_through(&disk, 2);
            })
        };
        {
            order.append(3, &record(3));
            order.append(1, &record(1));
            order.wait_durable(1).unwrap();
            on_disk_through(&disk, 1);
            assert!(order.durable_seq() >= 1);
        }
        a.join().unwrap();
        order.wait_durable(3).unwrap();
        on_disk_through(&disk, 3);
        writer.join().unwrap();
        assert_eq!(order.durable_seq(), 3);
        assert_eq!(order.queued_records(), 0);
    });
}

/// With room for one queued record, seq 3 must wait for space while seqs
/// 1 and 2 come from other threads; nobody deadlocks and all three land in
/// order.
#[test]
fn backpressure_never_blocks_the_lowest_missing_seq() {
    loom::model(|| {
        let order = Arc::new(Order::new(0, false, 1, 1 << 20));
        let disk = Arc::new(Mutex::new(Vec::new()));
        let writer = writer(order.clone(), disk.clone(), 3);
        let appenders: Vec<_> = [3u64, 2]
            .into_iter()
            .map(|seq| {
                let order = order.clone();
                thread::spawn(move || order.append(seq, &record(seq)))
            })
            .collect();
        order.append(1, &record(1));
        for appender in appenders {
            appender.join().unwrap();
        }
        order.wait_durable(3).unwrap();
        on_disk_through(&disk, 3);
        writer.join().unwrap();
    });
}

/// The writer fails after writing seq 1: a waiter on seq 2 gets the error,
/// never Ok, whichever runs first.
#[test]
fn a_writer_error_is_never_reported_as_durable() {
    loom::model(|| {
        let order = Arc::new(Order::new(0, false, 16, 1 << 20));
        let waiter = {
            let order = order.clone();
            thread::spawn(move || order.wait_durable(2))
        };
        let failing = {
            let order = order.clone();
            thread::spawn(move || {
                let mut batch = Ready::default();
                let mut written = 0;
                while written == 0 {
                    let taken = order.take(&mut batch, None);
                    if taken.records > 0 {
                        // Write only the first record, then fail.
                        written = 1;
                        order.written(1);
                        order.synced(1);
                        order.fail(JournalError::Closed);
                    }
                }
            })
        };
        order.append(1, &record(1));
        order.append(2, &record(2));
        let answer = waiter.join().unwrap();
        failing.join().unwrap();
        // Seq 2 was never written: its waiter must get the error.
        assert!(answer.is_err(), "released without durability");
        assert_eq!(order.durable_seq(), 1);
    });
}

/// `sync` asks the writer for everything appended so far (seq 1, appended
/// before it on this thread) and returns a seq that is on disk with every
/// seq below it, while another thread appends seq 2 meanwhile.
#[test]
fn sync_returns_only_what_is_on_disk() {
    loom::model(|| {
        let order = Arc::new(Order::new(0, false, 16, 1 << 20));
        let disk = Arc::new(Mutex::new(Vec::new()));
        let writer = writer(order.clone(), disk.clone(), 2);
        let other = {
            let order = order.clone();
            thread::spawn(move || order.append(2, &record(2)))
        };
        order.append(1, &record(1));
        let synced = order.sync().unwrap();
        assert!(synced >= 1);
        on_disk_through(&disk, synced);
        other.join().unwrap();
        order.wait_durable(2).unwrap();
        writer.join().unwrap();
    });
}

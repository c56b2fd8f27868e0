//! The journal's storage layer (feature `journal`): round trips in every
//! durability mode, out-of-order appends from many threads, group commit,
//! torn tails cut at every byte, bit flips before the tail, the hash chain
//! catching an edited record whose CRC was fixed up, segment rolling and
//! deletion, the directory lock, backpressure and the durability future.
#![cfg(not(omnistock_loom))]

use omnistock::journal::{
    read, verify, Durability, Journal, JournalError, JournalOptions, OpenReport,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "omnistock-journal-test-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn options(durability: Durability) -> JournalOptions {
    JournalOptions {
        durability,
        ..JournalOptions::default()
    }
}

// payload() crosses what a slot holds in place.
const _: () = assert!(omnistock::journal::INLINE_PAYLOAD < 70);

/// `Sync` with segments rolled at `bytes`.
fn small_segments(bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes: bytes,
        ..options(Durability::Sync)
    }
}

fn payload(seq: u64) -> Vec<u8> {
    // Lengths vary with the seq, 0 included, on both sides of what a ring
    // slot holds in place (INLINE_PAYLOAD).
    (0..(seq % 71) as u8).map(|i| i ^ seq as u8).collect()
}

fn open(dir: &Path, options: JournalOptions) -> (Journal, OpenReport) {
    Journal::open(dir, options).expect("open")
}

/// Every record of `dir` after `after`, failing the test on an error.
fn all_records(dir: &Path, after: u64) -> Vec<(u64, Vec<u8>)> {
    read(dir, after)
        .expect("read")
        .collect::<Result<Vec<_>, _>>()
        .expect("records")
}

/// `count` records, seqs 1..=count, written through a journal and closed.
fn written(dir: &Path, count: u64, options: JournalOptions) {
    let (journal, _) = open(dir, options);
    for seq in journal.last_seq() + 1..=journal.last_seq() + count {
        journal.append(seq, payload(seq));
    }
    journal.sync().expect("sync");
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    files.sort();
    files
}

/// Bytes of a segment header (format version 2).
const HEADER: usize = 64;

/// Offsets of the records in a segment file (walking the frames' lengths).
fn record_offsets(file: &Path) -> Vec<usize> {
    let bytes = fs::read(file).unwrap();
    let mut offsets = Vec::new();
    let mut at = HEADER;
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 32 + len;
    }
    offsets
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn records_round_trip_in_every_mode_and_appends_continue_after_reopen() {
    for durability in [
        Durability::Sync,
        Durability::Batch { every_ms: 2 },
        Durability::None,
    ] {
        let dir = Scratch::new("round-trip");
        let (journal, report) = open(dir.path(), options(durability));
        assert_eq!(report.last_seq, 0);
        assert_eq!(journal.last_seq(), 0);
        for seq in 1..=100 {
            journal.append(seq, payload(seq));
        }
        journal.wait_durable(100).unwrap();
        assert!(journal.durable_seq() >= 100 && journal.written_seq() >= 100);
        drop(journal);

        let (journal, report) = open(dir.path(), options(durability));
        assert_eq!((report.last_seq, journal.last_seq()), (100, 100));
        assert!(report.truncated.is_empty());
        for seq in 101..=150 {
            journal.append(seq, payload(seq));
        }
        assert_eq!(journal.sync().unwrap(), 150);
        drop(journal);

        let expected: Vec<_> = (1..=150).map(|seq| (seq, payload(seq))).collect();
        assert_eq!(all_records(dir.path(), 0), expected, "{durability:?}");
        assert_eq!(all_records(dir.path(), 140), expected[140..].to_vec());
        let report = verify(dir.path()).unwrap();
        assert_eq!(
            (report.records, report.first_seq, report.last_seq),
            (150, 1, 150)
        );
    }
}

#[test]
fn many_threads_appending_out_of_order_come_back_in_order() {
    let dir = Scratch::new("threads");
    let (journal, _) = open(dir.path(), options(Durability::None));
    let journal = Arc::new(journal);
    let next = Arc::new(AtomicU64::new(1));
    let threads: Vec<_> = (0..8)
        .map(|t: u8| {
            let (journal, next) = (journal.clone(), next.clone());
            thread::spawn(move || {
                let mut mine = Vec::new();
                // Take seqs in bursts and append each burst backwards, so
                // records arrive above gaps all the time.
                for _ in 0..200 {
                    let first = next.fetch_add(5, Ordering::Relaxed);
                    for seq in (first..first + 5).rev() {
                        journal.append(seq, tagged(seq, t));
                        mine.push(seq);
                    }
                    if t % 2 == 0 {
                        journal.wait_durable(first + 4).unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let mut owner = std::collections::HashMap::new();
    for (t, thread) in threads.into_iter().enumerate() {
        for seq in thread.join().unwrap() {
            owner.insert(seq, t as u8);
        }
    }
    let last = next.load(Ordering::Relaxed) - 1;
    assert_eq!(last, 8 * 200 * 5);
    journal.wait_durable(last).unwrap();
    drop(journal);
    let records = all_records(dir.path(), 0);
    assert_eq!(records.len() as u64, last);
    for (i, (seq, bytes)) in records.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*bytes, tagged(*seq, owner[seq]));
    }
}

/// `payload(seq)` with one more byte, telling which thread appended it.
fn tagged(seq: u64, thread: u8) -> Vec<u8> {
    let mut bytes = payload(seq);
    bytes.push(thread);
    bytes
}

#[test]
fn waiters_of_one_batch_share_one_fdatasync() {
    let dir = Scratch::new("group-commit");
    let (journal, _) = open(dir.path(), options(Durability::Sync));
    let journal = Arc::new(journal);
    let waiters = 64u64;
    // Seqs 2..=65 arrive first, each from its own thread, which then waits;
    // none can be written before seq 1, so when it arrives all 65 records
    // are ready at once: one batch, one write, one fdatasync.
    let appended = Arc::new(Barrier::new(waiters as usize + 1));
    let threads: Vec<_> = (2..=waiters + 1)
        .map(|seq| {
            let (journal, appended) = (journal.clone(), appended.clone());
            thread::spawn(move || {
                journal.append(seq, payload(seq));
                appended.wait();
                journal.wait_durable(seq).unwrap();
                assert!(journal.durable_seq() >= seq);
            })
        })
        .collect();
    appended.wait();
    assert_eq!(journal.written_seq(), 0, "nothing written across the gap");
    journal.append(1, payload(1));
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = journal.stats();
    assert_eq!(stats.records, waiters + 1);
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(stats.fsyncs, 1, "{stats:?}");

    // Under load: 8 threads each appending and waiting, 300 times; every
    // wait is released and the fsyncs never outnumber the batches.
    let next = Arc::new(AtomicU64::new(waiters + 2));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (journal, next) = (journal.clone(), next.clone());
            thread::spawn(move || {
                for _ in 0..300 {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    journal.append(seq, payload(seq));
                    journal.wait_durable(seq).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = journal.stats();
    assert_eq!(stats.records, waiters + 1 + 2400);
    assert!(stats.fsyncs <= stats.batches, "{stats:?}");
    assert_eq!(journal.durable_seq(), waiters + 1 + 2400);
}

#[test]
fn a_tail_torn_at_every_byte_of_the_last_record_is_truncated_and_reported() {
    let source = Scratch::new("torn-source");
    written(source.path(), 6, options(Durability::Sync));
    let file = segment_files(source.path()).pop().unwrap();
    let name = file.file_name().unwrap().to_owned();
    let bytes = fs::read(&file).unwrap();
    let last = *record_offsets(&file).last().unwrap();
    let before: Vec<_> = (1..=5).map(|seq| (seq, payload(seq))).collect();
    for cut in last + 1..bytes.len() {
        for garbage in [false, true] {
            let dir = Scratch::new("torn");
            copy_dir(source.path(), dir.path());
            let mut torn = bytes[..cut].to_vec();
            if garbage {
                // A crash can also leave zeroed pages past the tear.
                torn.resize(bytes.len() + 64, 0);
            }
            fs::write(dir.path().join(&name), &torn).unwrap();

            // Read-only readers skip the tail and report it.
            let mut records = read(dir.path(), 0).unwrap();
            let got: Vec<_> = records.by_ref().collect::<Result<_, _>>().unwrap();
            assert_eq!(got, before, "cut {cut}");
            assert_eq!(records.tail().unwrap().offset, last as u64);
            assert_eq!(verify(dir.path()).unwrap().last_seq, 5);

            // Open truncates it and says so; appends continue at 6.
            let (journal, report) = open(dir.path(), options(Durability::Sync));
            assert_eq!(report.last_seq, 5, "cut {cut}");
            assert_eq!(report.truncated.len(), 1);
            assert_eq!(report.truncated[0].offset, last as u64);
            assert_eq!(report.truncated[0].bytes, (torn.len() - last) as u64);
            journal.append(6, b"again");
            journal.wait_durable(6).unwrap();
            drop(journal);
            let mut expected = before.clone();
            expected.push((6, b"again".to_vec()));
            assert_eq!(all_records(dir.path(), 0), expected);
            assert_eq!(verify(dir.path()).unwrap().records, 6);
        }
    }
}

#[test]
fn sync_zero_fills_ahead_and_a_closed_segment_ends_at_its_last_record() {
    let dir = Scratch::new("zero-ahead");
    let (journal, _) = open(dir.path(), options(Durability::Sync));
    journal.append(1, payload(1));
    journal.wait_durable(1).unwrap();
    let file = segment_files(dir.path()).pop().unwrap();
    let live = fs::read(&file).unwrap();
    let end = HEADER + 32 + payload(1).len();
    assert!(
        live.len() > end,
        "no space zero-filled ahead: {} bytes",
        live.len()
    );
    assert!(live[end..].iter().all(|&b| b == 0));
    // A reader of the live directory sees the record and no torn tail.
    let mut records = read(dir.path(), 0).unwrap();
    assert_eq!(records.by_ref().count(), 1);
    assert!(records.tail().is_none());
    drop(journal);
    assert_eq!(fs::metadata(&file).unwrap().len(), end as u64);
}

#[test]
fn a_zeroed_tail_left_by_a_crash_is_no_record_and_appends_go_before_it() {
    let dir = Scratch::new("zero-tail");
    written(dir.path(), 5, options(Durability::Sync));
    let file = segment_files(dir.path()).pop().unwrap();
    let end = fs::metadata(&file).unwrap().len();
    // A crash in Sync mode leaves the zero-filled space after the records.
    let mut bytes = fs::read(&file).unwrap();
    bytes.resize(end as usize + 5000, 0);
    fs::write(&file, &bytes).unwrap();
    assert_eq!(all_records(dir.path(), 0).len(), 5);
    assert_eq!(verify(dir.path()).unwrap().last_seq, 5);
    let (journal, report) = open(dir.path(), options(Durability::Batch { every_ms: 5 }));
    assert_eq!(report.last_seq, 5);
    assert!(report.truncated.is_empty(), "{report:?}");
    journal.append(6, payload(6));
    journal.wait_durable(6).unwrap();
    drop(journal);
    let expected: Vec<_> = (1..=6).map(|seq| (seq, payload(seq))).collect();
    assert_eq!(all_records(dir.path(), 0), expected);
    assert_eq!(verify(dir.path()).unwrap().records, 6);
    assert_eq!(record_offsets(&file).len(), 6);
}

#[test]
fn a_bit_flipped_before_the_tail_is_an_error_naming_file_and_offset() {
    let source = Scratch::new("flip-source");
    written(source.path(), 6, options(Durability::Sync));
    let file = segment_files(source.path()).pop().unwrap();
    let name = file.file_name().unwrap().to_owned();
    let bytes = fs::read(&file).unwrap();
    let offsets = record_offsets(&file);
    let dir = Scratch::new("flip");
    copy_dir(source.path(), dir.path());
    let target = dir.path().join(&name);
    // Every bit of records 1 to 5 (the 6th is the tail) and of the header.
    let mut spans = vec![(0, HEADER, 0)];
    for (i, pair) in offsets.windows(2).enumerate() {
        spans.push((pair[0], pair[1], i + 1));
    }
    for (start, end, record) in spans {
        for bit in start * 8..end * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            fs::write(&target, &flipped).unwrap();
            let mut records = read(dir.path(), 0).unwrap();
            let mut seen = Vec::new();
            let error = loop {
                match records.next() {
                    Some(Ok((seq, _))) => seen.push(seq),
                    Some(Err(error)) => break error,
                    None => panic!("bit {bit}: no error, read {seen:?}"),
                }
            };
            // Only the records before the damaged one were returned.
            assert_eq!(seen, (1..record as u64).collect::<Vec<_>>(), "bit {bit}");
            match error {
                JournalError::Corrupt { file, offset, .. } => {
                    assert_eq!(file, target);
                    assert_eq!(offset, start as u64, "bit {bit}");
                }
                other => panic!("bit {bit}: {other}"),
            }
            assert!(matches!(
                verify(dir.path()),
                Err(JournalError::Corrupt { .. })
            ));
            if bit % 61 == 0 {
                // Open refuses too, and changes nothing.
                let error = Journal::open(dir.path(), options(Durability::Sync)).unwrap_err();
                assert!(
                    matches!(error, JournalError::Corrupt { offset, .. } if offset == start as u64)
                );
                assert_eq!(fs::read(&target).unwrap(), flipped);
                if record > 0 {
                    // Salvage keeps the records before the damaged one.
                    let salvage = JournalOptions {
                        salvage_last_segment: true,
                        ..options(Durability::Batch { every_ms: 5 })
                    };
                    let (journal, report) = open(dir.path(), salvage);
                    assert_eq!(report.last_seq, record as u64 - 1);
                    assert_eq!(report.truncated[0].offset, start as u64);
                    drop(journal);
                    assert_eq!(all_records(dir.path(), 0).len(), record - 1);
                    fs::write(&target, &flipped).unwrap();
                }
            }
        }
    }
}

#[test]
fn verify_catches_an_edited_payload_whose_crc_was_recomputed() {
    let dir = Scratch::new("tamper");
    written(dir.path(), 10, options(Durability::Sync));
    let clean = verify(dir.path()).unwrap();
    assert_eq!((clean.records, clean.last_seq), (10, 10));
    assert_eq!(clean.head.len(), 64);

    let file = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&file).unwrap();
    let at = record_offsets(&file)[3]; // seq 4
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    assert!(len > 0);
    bytes[at + 32] ^= 0xff;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&bytes[at..at + 4]),
        &bytes[at + 8..at + 32 + len],
    );
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&file, &bytes).unwrap();

    // The CRCs all match, so a plain read returns the edited record...
    assert_eq!(all_records(dir.path(), 0).len(), 10);
    // ...but the chain names it.
    match verify(dir.path()) {
        Err(JournalError::Tampered {
            file: f,
            offset,
            seq,
        }) => {
            assert_eq!((f, offset, seq), (file, at as u64, 4));
        }
        other => panic!("{other:?}"),
    }
}

/// A segment header whose chain state shares only the first 16 bytes (the
/// previous record's tag) with the state the chain really reached, CRC
/// fixed up: read, which recomputes nothing, takes it; verify, which
/// recomputes the state, names the file.
#[test]
fn verify_catches_a_header_state_that_only_matches_the_last_tag() {
    let dir = Scratch::new("header-state");
    let small = small_segments(300);
    written(dir.path(), 40, small);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let target = &files[1];
    let mut bytes = fs::read(target).unwrap();
    // The state is bytes 24..56; its tag part is 24..40.
    bytes[24 + 20] ^= 0x01;
    let crc = crc32c::crc32c(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    fs::write(target, &bytes).unwrap();
    assert_eq!(all_records(dir.path(), 0).len(), 40);
    match verify(dir.path()) {
        Err(JournalError::Corrupt { file, offset, .. }) => {
            assert_eq!((&file, offset), (target, 0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn segments_roll_and_covered_ones_are_deleted_keeping_the_chain_verifiable() {
    let dir = Scratch::new("roll");
    let small = small_segments(300);
    let (journal, _) = open(dir.path(), small);
    for seq in 1..=200 {
        journal.append(seq, payload(seq));
    }
    journal.wait_durable(200).unwrap();
    let files = segment_files(dir.path());
    assert!(files.len() > 20, "{} segments", files.len());
    for file in &files {
        assert!(fs::metadata(file).unwrap().len() <= 300);
    }
    assert_eq!(all_records(dir.path(), 0).len(), 200);
    let first_seqs: Vec<u64> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();

    journal.delete_through(100).unwrap();
    let kept = segment_files(dir.path());
    let kept_first: u64 = kept[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The oldest kept segment holds seq 101 or starts right after it.
    let expected_first = *first_seqs.iter().filter(|&&s| s <= 101).max().unwrap();
    assert_eq!(kept_first, expected_first);
    assert!(kept.len() < files.len());
    assert_eq!(all_records(dir.path(), 100).len(), 100);
    assert!(matches!(
        read(dir.path(), 0),
        Err(JournalError::Missing { wanted: 1, first }) if first == kept_first
    ));
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.first_seq, report.last_seq), (kept_first, 200));

    // Deleting everything keeps the current segment.
    journal.delete_through(u64::MAX).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    drop(journal);
    let (journal, report) = open(dir.path(), small);
    assert_eq!(report.last_seq, 200);
    journal.append(201, payload(201));
    journal.wait_durable(201).unwrap();
    drop(journal);
    assert_eq!(verify(dir.path()).unwrap().last_seq, 201);
}

#[test]
fn sync_in_none_mode_covers_the_segments_rolled_since_the_last_sync() {
    // `sync()` promises every record appended so far on disk in every
    // mode, and fdatasyncs the current segment: so a roll syncs the
    // segment it closes even in `None` (one fdatasync each).
    let dir = Scratch::new("none-roll");
    let none = JournalOptions {
        segment_bytes: 300,
        ..options(Durability::None)
    };
    let (journal, _) = open(dir.path(), none);
    for seq in 1..=40 {
        journal.append(seq, payload(seq));
    }
    journal.sync().unwrap();
    let segments = segment_files(dir.path()).len() as u64;
    assert!(segments > 4, "{segments} segments");
    let stats = journal.stats();
    assert!(
        stats.fsyncs >= segments,
        "{} fsyncs for {segments} segments",
        stats.fsyncs
    );
    // Nothing rolled since: the next sync is the current segment's alone.
    journal.append(41, payload(41));
    journal.sync().unwrap();
    assert!(journal.stats().fsyncs <= stats.fsyncs + 2);
    drop(journal);
    assert_eq!(all_records(dir.path(), 0).len(), 41);
}

#[test]
fn a_torn_header_of_a_new_last_segment_is_removed() {
    let dir = Scratch::new("torn-header");
    let small = small_segments(200);
    written(dir.path(), 20, small);
    let last = segment_files(dir.path()).pop().unwrap();
    let last_first: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    // A crash right after the roll created the file: a partial header.
    let bytes = fs::read(&last).unwrap();
    fs::write(&last, &bytes[..20]).unwrap();
    let (journal, report) = open(dir.path(), small);
    assert_eq!(report.last_seq, last_first - 1);
    assert_eq!(report.truncated[0].offset, 0);
    assert!(!last.exists());
    journal.append(last_first, b"x");
    journal.wait_durable(last_first).unwrap();
    drop(journal);
    assert_eq!(verify(dir.path()).unwrap().last_seq, last_first);
}

#[test]
fn a_second_open_of_a_locked_directory_fails() {
    let dir = Scratch::new("lock");
    let (journal, _) = open(dir.path(), options(Durability::Sync));
    match Journal::open(dir.path(), options(Durability::Sync)) {
        Err(JournalError::Locked { dir: locked }) => assert_eq!(locked, dir.path()),
        other => panic!("{other:?}"),
    }
    // Another process is refused too (util-linux `flock -n`, where installed).
    let lock = dir.path().join("LOCK");
    let other_process = || {
        std::process::Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .ok()
            .map(|status| status.success())
    };
    let while_open = other_process();
    drop(journal);
    if let Some(locked_out) = while_open {
        assert!(
            !locked_out,
            "another process took the lock of an open journal"
        );
        assert_eq!(other_process(), Some(true), "the lock outlived the journal");
    }
    let (_journal, _) = open(dir.path(), options(Durability::Sync));
}

/// Starts a thread appending `seqs` (payloads from `make`) and checks that
/// it is held by backpressure after exactly `held_after` of them, with never
/// more than `bound` records queued meanwhile; returns the thread.
fn appender_held_after(
    journal: &Arc<Journal>,
    seqs: std::ops::RangeInclusive<u64>,
    make: fn(u64) -> Vec<u8>,
    held_after: usize,
    bound: usize,
) -> thread::JoinHandle<()> {
    let appended = Arc::new(AtomicUsize::new(0));
    let appender = {
        let (journal, appended) = (journal.clone(), appended.clone());
        thread::spawn(move || {
            for seq in seqs {
                journal.append(seq, make(seq));
                appended.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let started = Instant::now();
    while appended.load(Ordering::SeqCst) < held_after {
        assert!(journal.queued_records() <= bound);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "appender stuck early"
        );
        thread::yield_now();
    }
    // Give the appender every chance to pass the bound.
    for _ in 0..1000 {
        thread::yield_now();
    }
    assert_eq!(appended.load(Ordering::SeqCst), held_after);
    assert!(!appender.is_finished());
    appender
}

#[test]
fn backpressure_bounds_the_queue_and_the_lowest_seq_always_gets_in() {
    let dir = Scratch::new("backpressure");
    let bounded = JournalOptions {
        max_queued_records: 8,
        ..options(Durability::None)
    };
    let (journal, _) = open(dir.path(), bounded);
    let journal = Arc::new(journal);
    // Seq 1 is held back, so nothing can be written: the appender of
    // 2..=100 must stop at 9, more than 8 seqs above the last written (0),
    // with 7 records waiting.
    let appender = appender_held_after(&journal, 2..=100, payload, 7, 8);
    assert_eq!(journal.queued_records(), 7);
    journal.append(1, payload(1));
    appender.join().unwrap();
    journal.wait_durable(100).unwrap();
    assert_eq!(journal.queued_records(), 0);
    drop(journal);
    assert_eq!(all_records(dir.path(), 0).len(), 100);
}

#[test]
fn big_payloads_wait_for_the_byte_budget_and_small_ones_do_not() {
    let dir = Scratch::new("byte-budget");
    let bounded = JournalOptions {
        max_queued_bytes: 4096,
        ..options(Durability::None)
    };
    let (journal, _) = open(dir.path(), bounded);
    let journal = Arc::new(journal);
    // Seq 1 is held back: small records pass the byte budget, big ones
    // stop once 4,096 bytes of big payloads wait (seqs 3 and 4).
    journal.append(2, payload(2));
    let appender = appender_held_after(&journal, 3..=10, big, 2, 3);
    assert_eq!(journal.queued_records(), 3);
    journal.append(1, payload(1));
    appender.join().unwrap();
    journal.wait_durable(10).unwrap();
    assert_eq!(journal.queued_records(), 0);
    drop(journal);
    let records = all_records(dir.path(), 0);
    assert_eq!(records.len(), 10);
    assert_eq!(records[9], (10, big(10)));
}

fn big(seq: u64) -> Vec<u8> {
    vec![seq as u8; 2048]
}

#[test]
fn a_seq_appended_twice_is_a_sticky_error() {
    let dir = Scratch::new("sequence");
    let (journal, _) = open(dir.path(), options(Durability::Sync));
    journal.append(1, b"one");
    journal.wait_durable(1).unwrap();
    journal.append(1, b"again");
    journal.append(2, b"two");
    assert!(matches!(
        journal.wait_durable(2),
        Err(JournalError::Sequence { seq: 1, .. })
    ));
    assert!(journal.sync().is_err());
    drop(journal);
    assert_eq!(all_records(dir.path(), 0), vec![(1, b"one".to_vec())]);
}

/// A minimal executor: polls on the test thread, parks between wakes.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[test]
fn the_durability_future_resolves_without_a_runtime() {
    let dir = Scratch::new("future");
    let (journal, _) = open(dir.path(), options(Durability::Batch { every_ms: 1 }));
    let journal = Arc::new(journal);
    let waiting = journal.durable(3);
    let appender = {
        let journal = journal.clone();
        thread::spawn(move || {
            for seq in [3, 1, 2] {
                journal.append(seq, payload(seq));
            }
        })
    };
    block_on(waiting).unwrap();
    assert!(journal.durable_seq() >= 3);
    appender.join().unwrap();
    // A future for a seq never appended resolves with Closed when the
    // journal goes.
    let never = journal.durable(10);
    let journal = Arc::try_unwrap(journal).unwrap();
    drop(journal);
    assert!(matches!(block_on(never), Err(JournalError::Closed)));
}

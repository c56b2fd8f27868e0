//! Criterion benches of the journal (feature `journal`), kept short. Every
//! record carries a 64-byte payload; the journal directories live under
//! the system temp dir (so the disk measured is the one behind it).
//!
//! - `append/{batch_5ms,none}`: one thread appends 10,000 records and waits
//!   until the last is durable (`Batch { every_ms: 5 }`: synced; `None`:
//!   written); records per second.
//! - `sync_waiters/{1,8,64}`: n threads each append a record and wait for
//!   it to be durable in `Sync` mode, over and over; records per second.
//!   After each, a line gives the `fdatasync` count, their mean latency and
//!   records per `fdatasync` (the group commit's batch).
//! - `recovery/read_100k`: `journal::read` of 100,000 records from disk
//!   (page cache warm); records per second.

use criterion::{BenchmarkId, Criterion, Throughput};
use omnistock::journal::{read, Durability, Journal, JournalOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PAYLOAD: [u8; 64] = [7; 64];

/// A fresh directory for one bench, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "omnistock-journal-bench-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Scratch, durability: Durability) -> Journal {
    let options = JournalOptions {
        durability,
        ..JournalOptions::default()
    };
    Journal::open(&dir.0, options).expect("open").0
}

fn append(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("append");
    let records = 10_000u64;
    group.throughput(Throughput::Elements(records));
    for (name, durability) in [
        ("batch_5ms", Durability::Batch { every_ms: 5 }),
        ("none", Durability::None),
    ] {
        let dir = Scratch::new(name);
        let journal = open(&dir, durability);
        let mut next = 1u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..records {
                    journal.append(next, PAYLOAD);
                    next += 1;
                }
                journal.wait_durable(next - 1).unwrap();
            })
        });
    }
    group.finish();
}

fn sync_waiters(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("sync_waiters");
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 8, 64] {
        let dir = Scratch::new(&format!("sync-{threads}"));
        let journal = open(&dir, Durability::Sync);
        let next = AtomicU64::new(1);
        let before = journal.stats();
        group.bench_with_input(
            BenchmarkId::from_parameter(threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    // At least one record per thread; the time is per record.
                    let per_thread = iters.div_ceil(threads);
                    let started = Instant::now();
                    std::thread::scope(|scope| {
                        for _ in 0..threads {
                            scope.spawn(|| {
                                for _ in 0..per_thread {
                                    let seq = next.fetch_add(1, Ordering::Relaxed);
                                    journal.append(seq, PAYLOAD);
                                    journal.wait_durable(seq).unwrap();
                                }
                            });
                        }
                    });
                    started
                        .elapsed()
                        .mul_f64(iters as f64 / (per_thread * threads) as f64)
                })
            },
        );
        let stats = journal.stats();
        let fsyncs = stats.fsyncs - before.fsyncs;
        let records = stats.records - before.records;
        if fsyncs > 0 {
            println!(
                "sync_waiters/{threads}: {fsyncs} fdatasyncs, mean {:.1} us each, {:.1} records per fdatasync",
                (stats.fsync_nanos - before.fsync_nanos) as f64 / fsyncs as f64 / 1000.0,
                records as f64 / fsyncs as f64
            );
        }
    }
    group.finish();
}

fn recovery(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("recovery");
    let records = 100_000u64;
    group.throughput(Throughput::Elements(records));
    let dir = Scratch::new("recovery");
    {
        let journal = open(&dir, Durability::None);
        for seq in 1..=records {
            journal.append(seq, PAYLOAD);
        }
        journal.sync().unwrap();
    }
    group.bench_function("read_100k", |b| {
        b.iter(|| {
            let mut count = 0u64;
            for record in read(&dir.0, 0).unwrap() {
                record.unwrap();
                count += 1;
            }
            assert_eq!(count, records);
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    append(&mut criterion);
    sync_waiters(&mut criterion);
    recovery(&mut criterion);
    criterion.final_summary();
}

//! A journaled inventory on disk: reopening, snapshots, backups, history,
//! torn tails, corruption, a locked directory and the durability future.

use omnistock::durability::{Durability, Note, Op, RecoveryError};
use omnistock::{
    Channel, Clock, Inventory, Line, ManualClock, ReservationId, ReservationState, Sku, StoreId,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("omnistock-recovery-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path, clock: &Arc<ManualClock>, durability: Durability) -> Inventory {
    Inventory::builder()
        .clock(clock.clone())
        .journal(dir, durability)
        .open()
        .expect("opens")
        .0
}

fn open_small_segments(dir: &Path, clock: &Arc<ManualClock>, archive: bool) -> Inventory {
    let options = omnistock::durability::JournalOptions {
        segment_bytes: 512,
        archive,
        ..Default::default()
    };
    Inventory::builder()
        .clock(clock.clone())
        .journal_options(dir, options)
        .open()
        .expect("opens")
        .0
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    found.sort();
    found
}

fn some_traffic(inventory: &Inventory, from: u64) {
    let (sku, store) = (Sku(1), StoreId(1));
    inventory.restock(sku, store, 100).unwrap();
    for n in from..from + 20 {
        let id = ReservationId(n);
        inventory
            .reserve(id, Channel::Online, &[Line::new(sku, store, 2)])
            .unwrap();
        match n % 3 {
            0 => drop(inventory.commit(id).unwrap()),
            1 => drop(inventory.release(id).unwrap()),
            _ => {}
        }
    }
}

#[test]
fn reopening_gives_back_stock_reservations_and_the_clock() {
    let dir = fresh_dir("reopen");
    let clock = Arc::new(ManualClock::new());
    let inventory = open(&dir, &clock, Durability::Sync);
    some_traffic(&inventory, 1);
    clock.advance(5);
    inventory.record_clock().unwrap();
    let items = inventory.items();
    let pending = inventory.pending_count();
    drop(inventory);

    let clock = Arc::new(ManualClock::new());
    let (inventory, report) = Inventory::builder()
        .clock(clock.clone())
        .journal(&dir, Durability::Sync)
        .open()
        .unwrap();
    assert_eq!(inventory.items(), items);
    assert_eq!(inventory.pending_count(), pending);
    assert_eq!(clock.now_ms(), 5, "the manual clock comes back");
    assert!(report.snapshot.is_some() && report.truncated.is_empty());
    // A paid order retried after the restart is a replay, not a new hold.
    let retried = inventory
        .reserve(
            ReservationId(3),
            Channel::Online,
            &[Line::new(Sku(1), StoreId(1), 2)],
        )
        .unwrap();
    assert!(retried.replayed);
    assert_eq!(
        inventory.get(ReservationId(3)).unwrap().state,
        ReservationState::Committed
    );
    assert!(inventory.check().consistent);
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_deletes_covered_segments_and_recovery_starts_from_it() {
    let dir = fresh_dir("snapshot");
    let clock = Arc::new(ManualClock::new());
    let inventory = open_small_segments(&dir, &clock, false);
    some_traffic(&inventory, 1);
    let before = segments(&dir).len();
    assert!(before > 2, "small segments roll");
    let covers = inventory.snapshot().unwrap();
    assert!(covers > 0);
    assert!(segments(&dir).len() < before, "covered segments deleted");
    assert!(!dir.join("archive").exists());
    some_traffic(&inventory, 100);
    // History starts at the oldest segment kept, and reaches the last record.
    let history = inventory.history(Sku(1), StoreId(1)).unwrap();
    assert!(history[0].seq > 1, "the covered segments are gone");
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
    let written = inventory.journal_stats().unwrap().records;
    assert_eq!(history.last().unwrap().seq, written);
    let items = inventory.items();
    let remembered = inventory.reservation_count();
    drop(inventory);
    let (inventory, report) = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .journal(&dir, Durability::Sync)
        .open()
        .unwrap();
    assert_eq!(report.snapshot_covers, covers);
    assert!(report.records_applied > 0);
    assert_eq!(inventory.items(), items);
    assert_eq!(inventory.reservation_count(), remembered);
    assert!(omnistock::durability::verify(&dir).is_ok());
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_backup_of_a_live_directory_opens_to_the_state_at_the_backup() {
    let dir = fresh_dir("live");
    let copy = fresh_dir("backup");
    let clock = Arc::new(ManualClock::new());
    let inventory = open(&dir, &clock, Durability::Batch { every_ms: 5 });
    some_traffic(&inventory, 1);
    inventory.backup(&copy).unwrap();
    let items = inventory.items();
    some_traffic(&inventory, 100); // after the backup
    let (restored, _) = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .journal(&copy, Durability::Sync)
        .open()
        .unwrap();
    assert_eq!(restored.items(), items);
    assert!(restored.check().consistent);
    assert!(
        inventory.backup(&copy).is_err(),
        "not over an existing backup"
    );
    drop((inventory, restored));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
}

#[test]
fn history_names_who_changed_a_count_and_why() {
    let dir = fresh_dir("history");
    let clock = Arc::new(ManualClock::new());
    let inventory = open(&dir, &clock, Durability::None);
    let (sku, store) = (Sku(4), StoreId(2));
    let delivery = Note::reason(10).with_reference("ASN-118");
    inventory
        .with_note(&delivery, |inv| inv.restock(sku, store, 8))
        .unwrap();
    clock.advance(7);
    let count = Note::reason(20).with_reference("count 2024-11-02");
    inventory
        .with_note(&count, |inv| inv.set_on_hand(sku, store, 6))
        .unwrap();
    inventory
        .reserve(
            ReservationId(5),
            Channel::InStore,
            &[Line::new(sku, store, 1)],
        )
        .unwrap();
    inventory.restock(Sku(9), store, 1).unwrap();
    let history = inventory.history(sku, store).unwrap();
    let ops: Vec<Op> = history.iter().map(|r| r.op).collect();
    assert_eq!(ops, [Op::Restock, Op::SetOnHand, Op::Reserve]);
    assert_eq!(history[0].note.as_ref(), Some(&delivery));
    assert_eq!(history[1].note.as_ref(), Some(&count));
    assert_eq!(history[1].at_ms, 7);
    let of_reservation = inventory.reservation_history(ReservationId(5)).unwrap();
    assert_eq!(of_reservation.len(), 1);
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_archive_keeps_history_and_verify_back_to_the_first_record() {
    let dir = fresh_dir("archive");
    let copy = fresh_dir("archive-copy");
    let clock = Arc::new(ManualClock::new());
    let inventory = open_small_segments(&dir, &clock, true);
    some_traffic(&inventory, 1);
    inventory.snapshot().unwrap();
    some_traffic(&inventory, 100);
    inventory.snapshot().unwrap();
    some_traffic(&inventory, 200);
    let archived = segments(&dir.join("archive"));
    assert!(
        archived.len() >= 3,
        "covered segments archived: {archived:?}"
    );
    let history = inventory.history(Sku(1), StoreId(1)).unwrap();
    assert_eq!(history[0].seq, 1, "from the journal's first record");
    assert_eq!(history[0].op, Op::Restock);
    let seqs: Vec<u64> = history.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let reserved = inventory.reservation_history(ReservationId(1)).unwrap();
    assert_eq!(reserved[0].op, Op::Reserve);
    let report = inventory.verify().unwrap().unwrap();
    assert_eq!(report.first_seq, 1);
    assert_eq!(report.segments, archived.len() + segments(&dir).len());

    // A backup carries the archive; the restored copy answers the same.
    inventory.backup(&copy).unwrap();
    let items = inventory.items();
    drop(inventory);
    let restored = open_small_segments(&copy, &Arc::new(ManualClock::new()), true);
    assert_eq!(restored.items(), items);
    assert_eq!(restored.history(Sku(1), StoreId(1)).unwrap(), history);
    drop(restored);

    // Recovery reads no archive: it opens the same with the archive gone.
    let moved = fresh_dir("archive-moved");
    std::fs::rename(dir.join("archive"), &moved).unwrap();
    let reopened = open_small_segments(&dir, &Arc::new(ManualClock::new()), true);
    assert_eq!(reopened.items(), items);
    assert!(reopened.history(Sku(1), StoreId(1)).unwrap()[0].seq > 1);
    drop(reopened);
    std::fs::rename(&moved, dir.join("archive")).unwrap();

    // Pruned from the oldest: checked from the oldest file left.
    std::fs::remove_file(&archived[0]).unwrap();
    let pruned = omnistock::durability::verify(&dir).unwrap();
    assert!(pruned.first_seq > 1);
    assert_eq!(pruned.last_seq, report.last_seq);
    // A flipped bit in an archived segment: named, never skipped.
    let damaged = &archived[archived.len() - 1];
    let mut bytes = std::fs::read(damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(damaged, &bytes).unwrap();
    let error = omnistock::durability::verify(&dir).unwrap_err();
    let name = damaged.file_name().unwrap().to_str().unwrap();
    assert!(error.to_string().contains(name), "{error}");
    // A file missing from the middle breaks the chain.
    bytes[middle] ^= 0x10;
    std::fs::write(damaged, &bytes).unwrap();
    assert!(omnistock::durability::verify(&dir).is_ok());
    std::fs::remove_file(&archived[2]).unwrap();
    let error = omnistock::durability::verify(&dir).unwrap_err();
    assert!(error.to_string().contains("seq"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
}

#[test]
fn an_archive_left_when_archiving_stops_is_detached_not_read_across_a_gap() {
    // Archived while on; then reopened with the archive off, whose
    // snapshots delete covered segments: the old archive would end short
    // of the segments left, so it is renamed aside (kept), and history,
    // verify and backups start at the oldest segment kept.
    let dir = fresh_dir("archive-off");
    let copy = fresh_dir("archive-off-copy");
    let inventory = open_small_segments(&dir, &Arc::new(ManualClock::new()), true);
    some_traffic(&inventory, 1);
    inventory.snapshot().unwrap();
    some_traffic(&inventory, 100);
    drop(inventory);
    let archived = segments(&dir.join("archive"));
    assert!(!archived.is_empty());

    let inventory = open_small_segments(&dir, &Arc::new(ManualClock::new()), false);
    some_traffic(&inventory, 200);
    inventory.snapshot().unwrap();
    some_traffic(&inventory, 300);
    assert!(!dir.join("archive").exists());
    let detached: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with("archive-before-")
        })
        .collect();
    assert_eq!(detached.len(), 1, "{detached:?}");
    assert_eq!(segments(&detached[0]).len(), archived.len(), "kept whole");
    let report = inventory.verify().unwrap().unwrap();
    assert!(report.first_seq > 1);
    let history = inventory.history(Sku(1), StoreId(1)).unwrap();
    assert!(history[0].seq >= report.first_seq);
    inventory.backup(&copy).unwrap();
    assert!(!copy.join("archive").exists());
    assert!(omnistock::durability::verify(&copy).is_ok());
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
}

#[test]
fn history_and_verify_run_whole_while_snapshots_move_segments() {
    // A snapshot moves (archive) or deletes the segments it covers; a
    // history or verify walking them meanwhile must not find one gone.
    for archive in [true, false] {
        let dir = fresh_dir(&format!("history-race-{archive}"));
        let inventory = Arc::new(open_small_segments(
            &dir,
            &Arc::new(ManualClock::new()),
            archive,
        ));
        some_traffic(&inventory, 1);
        let snapshots = {
            let inventory = inventory.clone();
            std::thread::spawn(move || {
                for round in 0..40 {
                    some_traffic(&inventory, 1000 + round * 100);
                    inventory.snapshot().unwrap();
                }
            })
        };
        let mut walks = 0;
        while !snapshots.is_finished() || walks == 0 {
            let history = inventory.history(Sku(1), StoreId(1));
            assert!(history.is_ok(), "archive {archive}: {history:?}");
            let verified = inventory.verify();
            assert!(verified.is_ok(), "archive {archive}: {verified:?}");
            walks += 1;
        }
        snapshots.join().unwrap();
        drop(inventory);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_torn_tail_is_cut_and_reported_and_older_corruption_is_an_error() {
    let dir = fresh_dir("torn");
    let clock = Arc::new(ManualClock::new());
    let inventory = open(&dir, &clock, Durability::Sync);
    some_traffic(&inventory, 1);
    drop(inventory);
    let last = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    let (inventory, report) = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .journal(&dir, Durability::Sync)
        .open()
        .unwrap();
    assert_eq!(report.truncated.len(), 1, "{report:?}");
    assert!(inventory.check().consistent);
    drop(inventory);

    // A flipped bit in the middle of the journal: an error naming the file.
    let mut bytes = std::fs::read(&last).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&last, &bytes).unwrap();
    let error = Inventory::builder()
        .journal(&dir, Durability::Sync)
        .open()
        .unwrap_err();
    assert!(matches!(error, RecoveryError::Journal(_)), "{error}");
    assert!(error.to_string().contains(".journal"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_open_of_a_live_directory_is_refused() {
    let dir = fresh_dir("locked");
    let (inventory, _) = Inventory::open(&dir).unwrap();
    assert!(Inventory::open(&dir).is_err());
    drop(inventory);
    assert!(Inventory::open(&dir).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future` on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[test]
fn the_durability_future_resolves_after_a_deferred_operation() {
    let dir = fresh_dir("future");
    let clock = Arc::new(ManualClock::new());
    let inventory = open(&dir, &clock, Durability::Batch { every_ms: 20 });
    let (level, seq) = inventory.deferred(|inv| inv.restock(Sku(1), StoreId(1), 3));
    assert_eq!(level.unwrap().on_hand, 3);
    assert!(seq > 0);
    block_on(inventory.durable(seq).unwrap()).unwrap();
    // A refusal writes nothing and has nothing to wait for.
    let (refused, none) =
        inventory.deferred(|inv| inv.sell(Sku(1), StoreId(1), 9, Channel::InStore));
    assert!(refused.is_err());
    assert_eq!(none, 0);
    drop(inventory);
    let (inventory, _) = Inventory::open(&dir).unwrap();
    assert_eq!(inventory.level(Sku(1), StoreId(1)).unwrap().on_hand, 3);
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_replay_tool_on_a_journal_recovers_its_answers_and_its_clock() {
    use omnistock::replay::Replayer;
    let dir = fresh_dir("replay");
    let mut replayer = Replayer::open(&dir, Durability::Sync).unwrap();
    let script = [
        r#"{"op":"restock","sku":1,"store":2,"qty":10}"#,
        r#"{"op":"advance","ms":1000}"#,
        r#"{"op":"reserve","id":7,"lines":[{"sku":1,"store":2,"qty":2}]}"#,
    ];
    for line in script {
        let answer = replayer.handle_line(line.as_bytes()).unwrap();
        assert!(answer.starts_with(r#"{"ok":true"#), "{answer}");
    }
    drop(replayer); // as good as a kill: every answer was durable when written
    let mut replayer = Replayer::open(&dir, Durability::Sync).unwrap();
    assert_eq!(replayer.inventory().now_ms(), 1000);
    let again = replayer
        .handle_line(br#"{"op":"reserve","id":7,"lines":[{"sku":1,"store":2,"qty":2}]}"#)
        .unwrap();
    assert!(again.contains(r#""replayed":true"#), "{again}");
    assert!(again.contains(r#""expires_at_ms":901000"#), "{again}");
    // Journaled, the tool holds as many campaigns as in memory (the
    // library's default of 1,024 is not the replay tool's).
    for campaign in 0..1100 {
        let line = format!(
            r#"{{"op":"campaign","campaign":{campaign},"sku":1,"store":2,"quota":5,"per_customer":1}}"#
        );
        let answer = replayer.handle_line(line.as_bytes()).unwrap();
        assert_eq!(answer, r#"{"ok":true}"#, "campaign {campaign}");
    }
    drop(replayer);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reorder_points_and_campaigns_survive_a_restart() {
    use omnistock::{CampaignId, CustomerId, Error};
    let dir = fresh_dir("alerts");
    let clock = Arc::new(ManualClock::new());
    let inventory = open(&dir, &clock, Durability::Sync);
    let (sku, store) = (Sku(3), StoreId(1));
    inventory.restock(sku, store, 20).unwrap();
    inventory.set_reorder_point(sku, store, 10);
    inventory.sell(sku, store, 12, Channel::InStore).unwrap(); // 8 < 10: alerted
    assert_eq!(inventory.take_alerts().len(), 1);
    inventory.set_reorder_point(Sku(4), store, 2); // creates the item
    inventory
        .define_campaign(CampaignId(1), sku, store, 5, 2)
        .unwrap();
    let shop = |inventory: &Inventory, id: u64, customer: u64, qty: u32| {
        inventory.reserve_in_campaign(
            ReservationId(id),
            Channel::Online,
            Line::new(sku, store, qty),
            CampaignId(1),
            CustomerId(customer),
            1_000,
        )
    };
    shop(&inventory, 9, 1, 2).unwrap();
    inventory.commit(ReservationId(9)).unwrap();
    inventory.snapshot().unwrap();
    shop(&inventory, 10, 2, 2).unwrap(); // after the snapshot
    inventory.set_reorder_point(Sku(5), store, 1);
    drop(inventory);

    let inventory = open(&dir, &Arc::new(ManualClock::new()), Durability::Sync);
    let usage = inventory
        .campaign(CampaignId(1))
        .expect("the campaign came back");
    assert_eq!((usage.used, usage.customers), (4, 2));
    assert!(matches!(
        shop(&inventory, 11, 1, 1),
        Err(Error::CustomerLimit { remaining: 0, .. })
    ));
    assert!(matches!(
        shop(&inventory, 12, 3, 2),
        Err(Error::QuotaExhausted { remaining: 1, .. })
    ));
    assert!(
        shop(&inventory, 10, 2, 2).unwrap().replayed,
        "a campaign reservation retried after the restart is a replay"
    );
    inventory.release(ReservationId(10)).unwrap();
    assert_eq!(
        inventory.campaign_customer_used(CampaignId(1), CustomerId(2)),
        0
    );
    inventory.restock(sku, store, 2).unwrap();
    assert_eq!(inventory.reorder_point(sku, store), 10);
    assert_eq!(inventory.reorder_point(Sku(4), store), 2);
    assert_eq!(inventory.reorder_point(Sku(5), store), 1);
    assert!(
        inventory.level(Sku(4), store).is_ok(),
        "the item it created came back"
    );
    // Still below its point: the mark came back too, so no second alert.
    inventory.sell(sku, store, 1, Channel::InStore).unwrap();
    assert!(inventory.take_alerts().is_empty());
    // Back above, then below again: one alert.
    inventory.restock(sku, store, 10).unwrap();
    inventory.sell(sku, store, 10, Channel::InStore).unwrap();
    assert_eq!(inventory.take_alerts().len(), 1);
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
}

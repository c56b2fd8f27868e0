//! `journal_decode`: arbitrary bytes as the segment files of a journal
//! directory, through `journal::read`, `journal::verify` and
//! `Journal::open`. None may panic, and:
//! - `verify` accepts only what `read` accepts (it checks more);
//! - with one segment, `open` fails exactly when `read` reports an error,
//!   and when it succeeds its `last_seq` is the last record `read`
//!   returned; afterwards `read` returns the same records with no torn
//!   tail left, and an append after them reads back.
//!
//! Input: byte 0 picks the layout (even: one segment named 1; odd: the
//! rest split at the offset in bytes 1-2 into two segments, the second
//! named by the first seq its header claims). The seeds are real segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnistock::journal::{read, verify, Durability, Journal, JournalError, JournalOptions};
use std::fs;
use std::path::{Path, PathBuf};

fn scratch() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("omnistock-fuzz-journal-{}", std::process::id()))
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.journal")
}

type Read = (Result<Vec<(u64, Vec<u8>)>, JournalError>, bool);

/// Every record `read` returns, or its error; and whether a tail was skipped.
fn read_all(dir: &Path) -> Read {
    let mut records = match read(dir, 0) {
        Ok(records) => records,
        Err(error) => return (Err(error), false),
    };
    let all = records.by_ref().collect::<Result<Vec<_>, _>>();
    (all, records.tail().is_some())
}

fuzz_target!(|data: &[u8]| {
    let Some((&layout, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let one_segment = layout % 2 == 0 || rest.len() < 2;
    if one_segment {
        fs::write(dir.join(segment_name(1)), rest).unwrap();
    } else {
        let split = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let (first, second) = rest[2..].split_at(split);
        let second_seq = second
            .get(16..24)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .filter(|&seq| seq > 1)
            .unwrap_or(2);
        fs::write(dir.join(segment_name(1)), first).unwrap();
        fs::write(dir.join(segment_name(second_seq)), second).unwrap();
    }

    let (records, _tail) = read_all(&dir);
    let verified = verify(&dir);
    if verified.is_ok() {
        assert!(records.is_ok(), "verify accepted what read refused: {records:?}");
    }
    let options = JournalOptions {
        durability: Durability::None,
        ..JournalOptions::default()
    };
    match Journal::open(&dir, options) {
        Ok((journal, report)) => {
            if one_segment {
                let records = records.as_ref().expect("open accepted what read refused");
                assert_eq!(report.last_seq, records.last().map_or(0, |r| r.0));
            }
            let next = report.last_seq + 1;
            journal.append(next, b"after".to_vec());
            journal.wait_durable(next).unwrap();
            drop(journal);
            if let Ok(before) = &records {
                let (after, tail) = read_all(&dir);
                let mut after = after.expect("read after open");
                assert!(!tail, "open left a torn tail");
                assert_eq!(after.pop(), Some((next, b"after".to_vec())));
                if one_segment {
                    assert_eq!(&after, before);
                }
            }
        }
        Err(error) => {
            if one_segment {
                assert!(records.is_err(), "open refused ({error}) what read accepted");
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
});

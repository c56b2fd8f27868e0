//! `recovery`: arbitrary bytes in a journal directory, then
//! `Inventory::open` on it. It may refuse the directory with an error, but
//! never panic, and no cell it opens has more reserved than on hand.
//!
//! Input: byte 0 picks what the rest is:
//! - 0: journal record payloads (split at the lengths in the bytes),
//!   appended through a real journal, so their frames and CRCs are valid
//!   and only the engine's record decoder and recovery judge them;
//! - 1: a snapshot file (`snapshot-...0.snap`), then a first record;
//! - 2: a whole segment file;
//! - otherwise: a snapshot file with a valid checksum appended over the
//!   bytes, so the sections' parser and the loader judge them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnistock::durability::Durability;
use omnistock::journal::{Journal, JournalOptions};
use omnistock::{Inventory, ManualClock};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn scratch() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("omnistock-fuzz-recovery-{}", std::process::id()))
}

/// The snapshot checksum (see src/durability/snapshot.rs).
fn checksum(bytes: &[u8]) -> u64 {
    let mut hash = 0x9E37_79B9_7F4A_7C15u64 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap());
        hash = (hash ^ word).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        hash ^= hash >> 32;
    }
    for &byte in chunks.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        hash ^= hash >> 32;
    }
    hash
}

fn append_records(dir: &Path, mut data: &[u8]) {
    let (journal, report) = Journal::open(dir, JournalOptions::default()).unwrap();
    let mut seq = report.last_seq;
    while let Some((&len, rest)) = data.split_first() {
        let take = usize::from(len % 64).min(rest.len());
        seq += 1;
        journal.append(seq, rest[..take].to_vec());
        data = &rest[take..];
    }
    journal.sync().unwrap();
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    match kind {
        0 => append_records(&dir, rest),
        1 => {
            let cut = rest.len() / 2;
            fs::write(dir.join(format!("snapshot-{:020}.snap", 0)), &rest[..cut]).unwrap();
            append_records(&dir, &rest[cut..]);
        }
        2 => fs::write(dir.join(format!("{:020}.journal", 1)), rest).unwrap(),
        _ => {
            let mut file = b"OMNISNAP".to_vec();
            file.extend_from_slice(&1u32.to_le_bytes());
            file.extend_from_slice(rest);
            let sum = checksum(&file);
            file.extend_from_slice(&sum.to_le_bytes());
            fs::write(dir.join(format!("snapshot-{:020}.snap", 0)), &file).unwrap();
        }
    }
    let opened = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .journal(&dir, Durability::None)
        .open();
    if let Ok((inventory, _)) = opened {
        let _ = inventory.check();
        for (_, level) in inventory.items() {
            assert!(level.reserved <= level.on_hand);
        }
    }
    let _ = fs::remove_dir_all(&dir);
});

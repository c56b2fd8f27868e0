//! `--workload memory`: what an item and a pending reservation cost in
//! resident memory. Builds `items` items, then `pending` pending single-line
//! reservations (distinct ids, one hour to live, spread over the items),
//! reading the process's resident set (`/proc/self/statm`) before, between
//! and after. Then the burst ends: every reservation is released, the clock
//! passes the retention and `expire()` forgets them all, and the resident
//! set is read once more: what the engine (and the allocator under it)
//! keeps of a burst that is over. For in-process engines only: a server's
//! memory is not ours.

use crate::engines::{Answer, Client, Engine, Op};
use omnistock::{Channel, ManualClock};
use std::time::Instant;

/// How long the measured engines remember ended reservations.
pub const RETENTION_MS: u64 = 1_000;

/// Resident bytes of this process.
pub fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("cannot read /proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or("bad /proc/self/statm")?;
    Ok(pages * page_size())
}

fn page_size() -> u64 {
    std::process::Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Builds and measures; `pending_now` reads the engine's own count of
/// pending reservations (to check they are all there). Returns the JSON line.
/// `clock` is the engine's, moved on to end the burst; engines are built
/// to remember ended reservations for [`RETENTION_MS`].
pub fn measure<E: Engine>(
    make: impl FnOnce() -> Result<E, String>,
    pending_now: impl Fn(&E) -> Option<u64>,
    clock: &ManualClock,
    items: u32,
    pending: u64,
) -> Result<String, String> {
    let before = rss_bytes()?;
    let started = Instant::now();
    let engine = make()?;
    let mut client = engine.client()?;
    let per_item = u32::try_from(pending.div_ceil(u64::from(items)) + 1)
        .map_err(|_| "too many reservations per item")?;
    for item in 0..items {
        match client.call(Op::Restock {
            item,
            qty: per_item,
        }) {
            Answer::Ok => {}
            other => return Err(format!("restock {item}: {other:?}")),
        }
    }
    let build_s = started.elapsed().as_secs_f64();
    let with_items = rss_bytes()?;
    let started = Instant::now();
    let mut line = [(0u32, 1u32)];
    for k in 0..pending {
        line[0].0 = (k % u64::from(items)) as u32;
        match client.call(Op::Reserve {
            id: k + 1,
            channel: Channel::InStore,
            lines: &line,
            ttl_ms: 3_600_000,
        }) {
            Answer::Ok => {}
            other => return Err(format!("reserve {}: {other:?}", k + 1)),
        }
    }
    let reserve_s = started.elapsed().as_secs_f64();
    let with_pending = rss_bytes()?;
    if let Some(count) = pending_now(&engine) {
        if count != pending {
            return Err(format!(
                "{} reports {count} pending reservations, expected {pending}",
                E::NAME
            ));
        }
    }
    // The burst ends: every cart released, then forgotten.
    for k in 0..pending {
        line[0].0 = (k % u64::from(items)) as u32;
        match client.call(Op::Release {
            id: k + 1,
            lines: &line,
        }) {
            Answer::Ok => {}
            other => return Err(format!("release {}: {other:?}", k + 1)),
        }
    }
    clock.advance(RETENTION_MS);
    match client.call(Op::Expire) {
        Answer::Count(0) => {}
        other => return Err(format!("expire after the releases: {other:?}")),
    }
    let remembered = engine.remembered()?;
    if remembered != 0 {
        return Err(format!(
            "{} remembers {remembered} reservations past their retention",
            E::NAME
        ));
    }
    let after_burst = rss_bytes()?;
    let kept_bytes = after_burst.saturating_sub(with_items);
    let kept_per_reservation = if pending == 0 {
        0.0
    } else {
        kept_bytes as f64 / pending as f64
    };
    let items_bytes = with_items.saturating_sub(before);
    let pending_bytes = with_pending.saturating_sub(with_items);
    let per_pending = if pending == 0 {
        0.0
    } else {
        pending_bytes as f64 / pending as f64
    };
    println!(
        "{}: {items} items cost {:.1} MiB ({:.1} B each, built in {build_s:.2} s); {pending} pending reservations {:.1} MiB more ({per_pending:.1} B each, in {reserve_s:.2} s); once released and forgotten, {:.1} MiB stay resident ({kept_per_reservation:.1} B per reservation)",
        E::NAME,
        items_bytes as f64 / 1048576.0,
        items_bytes as f64 / f64::from(items),
        pending_bytes as f64 / 1048576.0,
        kept_bytes as f64 / 1048576.0,
    );
    let json = format!(
        concat!(
            "{{\"engine\":\"{}\",\"workload\":\"memory\",\"items\":{},\"pending\":{},",
            "\"rss_before_bytes\":{},\"rss_items_bytes\":{},\"rss_pending_bytes\":{},",
            "\"rss_kept_after_burst_bytes\":{},",
            "\"bytes_per_item\":{:.1},\"bytes_per_pending\":{:.1},",
            "\"bytes_kept_per_forgotten\":{:.1},\"build_s\":{:.3},\"reserve_s\":{:.3}}}"
        ),
        E::NAME,
        items,
        pending,
        before,
        items_bytes,
        pending_bytes,
        kept_bytes,
        items_bytes as f64 / f64::from(items),
        per_pending,
        kept_per_reservation,
        build_s,
        reserve_s,
    );
    drop(client);
    drop(engine);
    Ok(json)
}

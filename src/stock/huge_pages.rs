//! Large zeroed tables on memory the kernel is asked to back with huge
//! pages: one of the crate's two `unsafe` modules (the other is
//! `prefetch`); its `unsafe` is the `madvise` call alone.
//!
//! The item table is read at a random entry by every reserve; on 4 KiB
//! pages such a read of a large table also misses the TLB. Linux backs
//! anonymous memory with 2 MiB pages where the process asks for them
//! (`madvise` with `MADV_HUGEPAGE`, what `transparent_hugepage=madvise`
//! waits for), but only in memory not yet touched: the request must come
//! between the allocation and the first write. A `Vec` of default values
//! writes every entry, so the table is allocated zeroed instead
//! (`bytemuck::try_zeroed_slice_box`: the allocator's zeroed memory, fresh
//! untouched pages for an allocation this large; `bytemuck::Zeroable`
//! vouches that all-zero bytes are a valid value) and advised before
//! anything is stored in it.
//!
//! The advice is only advice: where the kernel has huge pages disabled, or
//! none free, or on another system, the table is the same zeroed memory on
//! ordinary pages. The price: a table built for far more items than it
//! holds becomes resident 2 MiB at a time rather than 4 KiB, up to the
//! size its `expected_items` asked for and no more.
#![allow(unsafe_code)]

use crate::error::BuildError;
use bytemuck::Zeroable;

/// Allocations smaller than this are left alone: one under 4 MiB need not
/// hold a whole aligned 2 MiB page, and the ones that do would hold one at
/// most.
const ADVISE_FROM_BYTES: usize = 4 << 20;

/// `len` zeroed values in one allocation, advised for huge pages when it is
/// large, or a [`BuildError`] naming `what` when the system refuses it.
pub(crate) fn zeroed_slice<T: Zeroable>(
    what: &'static str,
    len: usize,
) -> Result<Box<[T]>, BuildError> {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    let mut values = bytemuck::try_zeroed_slice_box::<T>(len)
        .map_err(|()| BuildError::OutOfMemory { what, bytes })?;
    if bytes >= ADVISE_FROM_BYTES {
        advise_huge_pages(values.as_mut_ptr().cast::<u8>(), bytes);
    }
    Ok(values)
}

/// Asks the kernel to back the whole pages in `start..start + len` with
/// huge pages when it first touches them. Best effort: the answer is not
/// looked at, since a refusal leaves ordinary pages, which work the same.
#[cfg(all(target_os = "linux", not(miri)))]
fn advise_huge_pages(start: *mut u8, len: usize) {
    // SAFETY: sysconf reads a system constant; it has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let Ok(page) = usize::try_from(page) else {
        return;
    };
    if !page.is_power_of_two() {
        return;
    }
    let first = (start as usize).next_multiple_of(page);
    let end = (start as usize + len) & !(page - 1);
    if end <= first {
        return;
    }
    // SAFETY: `first..end` is a page-aligned range inside the allocation
    // just made, which this process owns and nothing has touched yet.
    // MADV_HUGEPAGE changes neither the contents nor the validity of any
    // memory: it only lets the kernel choose larger pages for the range
    // (on a fault, or later by merging), so no reference anywhere is
    // affected.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

/// Elsewhere (and under Miri, which cannot call the kernel) the memory
/// stays on ordinary pages.
#[cfg(not(all(target_os = "linux", not(miri))))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    #[derive(Debug)]
    struct Pair {
        word: AtomicU64,
        small: AtomicU32,
    }

    // SAFETY: two atomics, each valid when zero; the tail padding need
    // hold nothing in particular.
    unsafe impl Zeroable for Pair {}

    #[test]
    fn values_start_zero_and_take_writes() {
        // Big enough to be advised (under Miri, small: it interprets
        // every byte).
        let len = if cfg!(miri) {
            1000
        } else {
            ADVISE_FROM_BYTES / 8 + 3
        };
        let values = zeroed_slice::<Pair>("pairs", len).expect("a test's allocation");
        assert_eq!(values.len(), len);
        assert!(values
            .iter()
            .all(|pair| pair.word.load(Ordering::Relaxed) == 0
                && pair.small.load(Ordering::Relaxed) == 0));
        values[len - 1].word.store(7, Ordering::Relaxed);
        values[0].small.fetch_add(2, Ordering::Relaxed);
        assert_eq!(values[len - 1].word.load(Ordering::Relaxed), 7);
        assert_eq!(values[0].small.load(Ordering::Relaxed), 2);
        assert_eq!(values[1].small.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn empty_and_impossible_requests() {
        assert!(zeroed_slice::<Pair>("none", 0).expect("empty").is_empty());
        let refused = zeroed_slice::<Pair>("too many", usize::MAX / 4).unwrap_err();
        assert_eq!(
            refused,
            BuildError::OutOfMemory {
                what: "too many",
                bytes: usize::MAX
            }
        );
    }

    #[test]
    fn zero_sized_values() {
        #[derive(Debug, PartialEq)]
        struct Nothing;
        // SAFETY: a zero-sized type has no bytes to be invalid.
        unsafe impl Zeroable for Nothing {}
        let values = zeroed_slice::<Nothing>("nothing", 5).expect("no memory needed");
        assert_eq!(values.len(), 5);
    }
}

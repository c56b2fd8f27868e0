//! Software prefetch: asking the core to start loading a cache line that
//! code is about to read, without waiting for it.
#![allow(unsafe_code)]

/// Starts loading the cache line holding `value` into every cache level,
/// and returns at once. A hint: it changes no memory, cannot fault, and
/// does nothing where the target has no prefetch instruction.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `_mm_prefetch` is unsafe only because it needs SSE, which
        // every x86_64 processor has (it is in the target's baseline).
        // PREFETCHT0 reads no value into the program and never faults, and
        // the address is that of a live reference besides.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    // Its point is Miri's (`bash .ci/run miri`): the intrinsic on these
    // addresses, a zero-sized value's included, checked for undefined
    // behaviour; natively it only shows the values untouched.
    #[test]
    fn prefetching_changes_nothing() {
        let values: Vec<u64> = (0..64).collect();
        for value in &values {
            prefetch(value);
        }
        prefetch(&values);
        prefetch(&());
        assert!(values.iter().enumerate().all(|(n, &v)| v == n as u64));
    }
}

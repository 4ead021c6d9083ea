//! A hint to the CPU to start loading a cache line the engine will need shortly. The
//! only `unsafe` in the core (STYLE §17): the intrinsic is marked unsafe because of its
//! target feature, but a prefetch never faults and changes no memory.
//!
//! Measured gain: the idempotency table is the engine's one random access per keyed
//! command; prefetching it a few commands ahead overlaps those cache misses (see
//! BENCHMARKS.md, payments suite).

#![allow(unsafe_code)]

/// Starts loading the cache line holding `value`.
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_address(std::ptr::from_ref(value).cast::<u8>());
}

/// Starts loading the first `lines_max` cache lines of `values`.
#[inline]
pub(crate) fn prefetch_lines<T>(values: &[T], lines_max: usize) {
    const LINE_BYTES: usize = 64;
    let bytes = std::mem::size_of_val(values).min(lines_max * LINE_BYTES);
    let start = values.as_ptr().cast::<u8>();
    for offset in (0..bytes).step_by(LINE_BYTES) {
        prefetch_address(start.wrapping_add(offset));
    }
}

/// Starts loading the cache line holding `address`, which is never dereferenced.
#[inline]
fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; it is a hint that
    // reads nothing architecturally and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

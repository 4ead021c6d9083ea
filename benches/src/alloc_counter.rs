//! A counting global allocator: wraps another allocator (mimalloc, in `main.rs`) and
//! counts every allocation and byte, so a benchmark can say how many allocations a
//! command cost and how many bytes an account occupies.
//!
//! The counters are process-wide atomics with `Relaxed` ordering: each is a plain
//! tally read on one thread after the work it measures, with no other memory it must
//! order. The only `unsafe` in the harness lives here (STYLE §17): implementing
//! `GlobalAlloc` is unsafe by definition, and each method only forwards to the inner
//! allocator under the caller's own contract.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static BYTES_FREED: AtomicU64 = AtomicU64::new(0);

/// `inner`, counting. A `realloc` counts as one allocation of the new size and the
/// freeing of the old one.
#[derive(Debug)]
pub(crate) struct CountingAllocator<A> {
    inner: A,
}

impl<A> CountingAllocator<A> {
    pub(crate) const fn new(inner: A) -> Self {
        Self { inner }
    }
}

fn count_allocation(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES_ALLOCATED.fetch_add(size as u64, Ordering::Relaxed);
}

fn count_deallocation(size: usize) {
    DEALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES_FREED.fetch_add(size as u64, Ordering::Relaxed);
}

// SAFETY: every method forwards its arguments unchanged to `inner`, itself a
// `GlobalAlloc`, so each upholds exactly the contract `inner` upholds; the counting
// around the calls touches only atomics and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation(layout.size());
        // SAFETY: the caller guarantees `layout` has a non-zero size, as `inner.alloc`
        // requires.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation(layout.size());
        // SAFETY: as for `alloc`: the caller guarantees a non-zero size.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_deallocation(layout.size());
        // SAFETY: the caller guarantees `ptr` came from this allocator (so from
        // `inner`, which made every block we handed out) with this same `layout`.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_deallocation(layout.size());
        count_allocation(new_size);
        // SAFETY: the caller guarantees `ptr` came from this allocator (so from
        // `inner`) with `layout`, and that `new_size` is non-zero and does not
        // overflow `isize` when rounded up to `layout.align()`.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// The counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AllocSnapshot {
    pub(crate) allocations: u64,
    pub(crate) deallocations: u64,
    pub(crate) bytes_allocated: u64,
    pub(crate) bytes_freed: u64,
}

impl AllocSnapshot {
    /// Reads the counters now.
    pub(crate) fn now() -> Self {
        Self {
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
            deallocations: DEALLOCATIONS.load(Ordering::Relaxed),
            bytes_allocated: BYTES_ALLOCATED.load(Ordering::Relaxed),
            bytes_freed: BYTES_FREED.load(Ordering::Relaxed),
        }
    }

    /// What happened between `earlier` and `self`.
    #[must_use]
    pub(crate) fn since(self, earlier: Self) -> AllocDelta {
        AllocDelta {
            allocations: self.allocations - earlier.allocations,
            deallocations: self.deallocations - earlier.deallocations,
            bytes_allocated: self.bytes_allocated - earlier.bytes_allocated,
            bytes_freed: self.bytes_freed - earlier.bytes_freed,
        }
    }
}

/// Allocation activity over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AllocDelta {
    pub(crate) allocations: u64,
    pub(crate) deallocations: u64,
    pub(crate) bytes_allocated: u64,
    pub(crate) bytes_freed: u64,
}

impl AllocDelta {
    /// Bytes still allocated at the end of the interval that were not at its start
    /// (negative if the interval freed more than it allocated).
    pub(crate) fn bytes_live(self) -> i128 {
        i128::from(self.bytes_allocated) - i128::from(self.bytes_freed)
    }
}

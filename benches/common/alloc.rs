//! A global allocator that counts heap allocations, shared by the benches that report
//! allocations per call or per event.
//!
//! Implementing `GlobalAlloc` requires `unsafe`; this file is the only `unsafe` code in the
//! project and is compiled into benches only (the library is `#![forbid(unsafe_code)]`). It
//! forwards every call to the system allocator unchanged and only counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The counting allocator: install it with `#[global_allocator]`.
pub struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Allocations (including reallocations) made by the process so far.
pub fn allocations() -> usize {
    ALLOCS.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged,
// so the caller's guarantees are exactly the ones `System` needs.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as this method's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as this method's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as this method's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

//! A global allocator that counts, per thread, the allocations made through
//! it: the deterministic stand-in for CPU time that the allocation tests
//! (`tests/alloc.rs`) assert and the per-stage budget (`bench --bin
//! stages`) prints.
//!
//! Install it in a binary or test target:
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;
//!
//! let (v, counts) = counting_alloc::measure(|| vec![1u8; 10]);
//! assert_eq!(v.len(), 10);
//! assert_eq!(counts.allocations, 1);
//! ```
//!
//! Counts are per thread, so work on other threads (another test of the
//! same binary, a runtime's worker) never shows in a measurement: run the
//! code under test on the measuring thread (a current-thread runtime's
//! `block_on`). Counting costs a thread-local increment per call.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    ops::Sub,
};

/// Wraps [`System`], counting each allocation and reallocation of the
/// calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting;

/// What a thread allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Counts {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`: each is a trip to
    /// the allocator, a `realloc` included (a growing `Vec` or `String`).
    pub allocations: u64,
    /// Bytes requested by those calls (a `realloc` counts its new size).
    pub bytes: u64,
}

impl Sub for Counts {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            allocations: self.allocations - earlier.allocations,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

thread_local! {
    // `const`-initialised and without a destructor: reading it never
    // allocates, which an allocator must not do.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: a thread being torn down may still free and allocate.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = BYTES.try_with(|n| n.set(n.get() + bytes as u64));
}

/// What this thread has allocated since it started.
pub fn counts() -> Counts {
    Counts {
        allocations: ALLOCATIONS.try_with(Cell::get).unwrap_or(0),
        bytes: BYTES.try_with(Cell::get).unwrap_or(0),
    }
}

/// Runs `f` and returns what it allocated on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Counts) {
    let before = counts();
    let value = f();
    (value, counts() - before)
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the arguments it was
// given, unchanged, so `System`'s guarantees are ours; the counting touches
// only const thread-locals, which neither allocate nor unwind.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

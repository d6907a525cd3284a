//! A counting allocator for this test binary: how many bytes a closure holds at its peak,
//! counted on the calling thread only (tests run on several threads at once).
//!
//! The library forbids `unsafe`; implementing [`GlobalAlloc`] needs it, so it lives here,
//! in the test binary, and only forwards to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Bytes this thread holds now, and the most it held since [`peak_bytes`] started.
    static HELD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn add(bytes: usize) {
    let _ = HELD.try_with(|h| {
        let (now, peak) = h.get();
        let now = now.saturating_add(bytes);
        h.set((now, peak.max(now)));
    });
}

fn sub(bytes: usize) {
    let _ = HELD.try_with(|h| {
        let (now, peak) = h.get();
        h.set((now.saturating_sub(bytes), peak));
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping touches only a
// const-initialised thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        sub(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it held at once beyond what the
/// thread held before (what it allocated and had not yet freed, at its peak).
pub fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = HELD.with(|h| {
        let (now, _) = h.get();
        h.set((now, now));
        now
    });
    let out = f();
    let peak = HELD.with(|h| h.get().1);
    (out, peak.saturating_sub(base))
}

/// The most a decoder may hold while refusing or reading a small input, whatever length
/// its fields declare: serde pre-allocates at most 1 MiB for a sequence whose length it is
/// told (`serde::de::size_hint::cautious`), a few nested ones can be open at once, and
/// everything else is bounded by the input itself.
pub const DECODE_BUDGET: usize = 8 << 20;

#[test]
fn the_counter_sees_an_allocation_and_its_release() {
    let (len, peak) = peak_bytes(|| vec![1u8; 3 << 20].len());
    assert_eq!(len, 3 << 20);
    assert!(peak >= 3 << 20, "{peak}");
    let ((), peak) = peak_bytes(|| ());
    assert_eq!(peak, 0);
}

//! The page map: one entry per 64 KiB page of the arena, pointing to the span that covers it,
//! so that `free` finds a block's span with one subtraction, one shift and one load, without
//! a lock. Entries are set for every page of a span the front end asked to be mapped whole
//! (slabs: any block may be freed) and for the first page of the others (large spans: only
//! their start is ever freed); every other entry is null.
//!
//! The page heap writes entries under its lock; readers are lock-free: an entry is written
//! before the span's memory is handed out, and a pointer reaches a reader only through that
//! hand-out (which orders them).

use crate::span::Span;
use crate::units::PAGE_SHIFT;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The page map of one page heap (written under its lock).
pub struct PageMap {
    base: usize,
    map: *mut *mut Span,
    len: usize,
}

impl PageMap {
    /// A map of `len` pages from `base` over `map`, zeroed metadata memory that lives for the
    /// process.
    pub fn new(base: usize, map: *mut *mut Span, len: usize) -> PageMap {
        debug_assert!(!map.is_null() && map as usize % align_of::<*mut Span>() == 0);
        PageMap { base, map, len }
    }

    /// Sets the entries of `pages` pages from `start` to `span`.
    ///
    /// # Safety
    /// `[start, start + pages * 64 KiB)` must lie in the arena; `span` must be null or the
    /// live header of the span covering those pages.
    pub unsafe fn set(&mut self, start: usize, pages: usize, span: *mut Span) {
        let first = (start - self.base) >> PAGE_SHIFT;
        debug_assert!(start >= self.base && first + pages <= self.len);
        for i in first..first + pages {
            // SAFETY: the pages lie in the arena (this function's contract), so i < first +
            // pages <= len: inside the map.
            unsafe { *self.map.add(i) = span };
        }
    }

    /// The entry of page `i` (counted from the base).
    pub fn entry(&self, i: usize) -> *mut Span {
        debug_assert!(i < self.len);
        // SAFETY: i < len: inside the map.
        unsafe { *self.map.add(i) }
    }

    /// Makes this map the one `free` reads ([`LOOKUP`]). Once per process, at start-up.
    pub fn publish(&self) {
        LOOKUP.base.store(self.base, Ordering::Relaxed);
        LOOKUP.map.store(self.map, Ordering::Relaxed);
        LOOKUP.len.store(self.len, Ordering::Release);
    }
}

/// The process's page map, as `free` reads it: set once at start.
pub struct Lookup {
    base: AtomicUsize,
    len: AtomicUsize,
    map: AtomicPtr<*mut Span>,
}

/// The page map of the process's page heap.
pub static LOOKUP: Lookup =
    Lookup { base: AtomicUsize::new(0), len: AtomicUsize::new(0), map: AtomicPtr::new(ptr::null_mut()) };

impl Lookup {
    /// The span holding `p`, or null if `p` is not in a mapped page of a live span (every page
    /// of a slab, the first of a large span) of the arena.
    #[inline]
    pub fn span_of(&self, p: usize) -> *mut Span {
        let base = self.base.load(Ordering::Relaxed);
        let idx = p.wrapping_sub(base) >> PAGE_SHIFT;
        if idx >= self.len.load(Ordering::Relaxed) {
            return ptr::null_mut();
        }
        // SAFETY: idx is below the map's length, and the map lives for the process.
        unsafe { *self.map.load(Ordering::Relaxed).add(idx) }
    }
}

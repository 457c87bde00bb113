//! Metadata memory: one lazily backed mapping, apart from the arena, holding the page heap's
//! tables (page map, huge page descriptors, free-huge-page bitmap, span headers) and a region
//! of generic space that the layers above take pieces of at start-up for their own pools.
//! Nothing in it is ever unmapped, so a pointer into it stays valid memory for the process's
//! life; it is zero until written.
//!
//! Also [`Pool`]: fixed-size objects in a piece of metadata, for span headers here and for the
//! thread heaps' own objects above.

use super::backing::Backing;
use crate::span::Span;
use crate::units::PAGES_PER_HUGE;
use core::ptr;

use super::desc::HpDesc;

/// Where each table of the metadata mapping starts, for an arena of `hps` huge pages and
/// `client` bytes of space for the layers above.
pub struct Meta {
    /// Pages of the arena (entries of the page map).
    pub pages: usize,
    /// Words of the free-huge-page bitmap.
    pub words: usize,
    /// The page map.
    pub page_map: usize,
    /// The huge page descriptors.
    pub desc: usize,
    /// The free-huge-page bitmap.
    pub free_words: usize,
    /// Span header storage: `[spans, spans_end)`.
    pub spans: usize,
    spans_end: usize,
    /// Generic space for the layers above: `[client, end)`, handed out by `take`.
    client: usize,
    end: usize,
}

impl Meta {
    /// Maps the metadata for an arena of `hps` huge pages plus `client` bytes; `None` if the
    /// mapping fails.
    pub fn map(backing: &mut impl Backing, hps: usize, client: usize) -> Option<Meta> {
        let pages = hps * PAGES_PER_HUGE;
        let words = hps.div_ceil(64);
        let map_bytes = pages * size_of::<*mut Span>();
        let desc_bytes = (hps * size_of::<HpDesc>()).next_multiple_of(64);
        let word_bytes = (words * 8).next_multiple_of(64);
        let span_bytes = (pages * size_of::<Span>()).next_multiple_of(64);
        let len = (map_bytes + desc_bytes + word_bytes + span_bytes + client).next_multiple_of(4096);
        let page_map = backing.map_metadata(len)?;
        let desc = page_map + map_bytes;
        let free_words = desc + desc_bytes;
        let spans = free_words + word_bytes;
        let client_start = spans + span_bytes;
        Some(Meta {
            pages,
            words,
            page_map,
            desc,
            free_words,
            spans,
            spans_end: client_start,
            client: client_start,
            end: page_map + len,
        })
    }

    /// The whole metadata mapping: `(start, bytes)`.
    pub fn range(&self) -> (usize, usize) {
        (self.page_map, self.end - self.page_map)
    }

    /// The span header storage, as a pool.
    pub fn span_pool(&self) -> Pool<Span> {
        Pool::new(self.spans, self.spans_end)
    }

    /// Takes `bytes` of the generic space, aligned to `align` (a power of two); `None` when
    /// it is used up.
    pub fn take(&mut self, bytes: usize, align: usize) -> Option<usize> {
        debug_assert!(align.is_power_of_two());
        let start = self.client.checked_next_multiple_of(align)?;
        let end = start.checked_add(bytes)?;
        if end > self.end {
            return None;
        }
        self.client = end;
        Some(start)
    }
}

/// A pool of fixed-size objects of type `T` in a piece of metadata: bump allocation plus a
/// free list threaded through freed objects. Not thread-safe: its owner keeps it under a lock.
///
/// Invariant: `[start, bump)` holds objects handed out or on the free list; objects are never
/// unmapped, so a pointer into the pool stays valid memory for the process's life.
pub struct Pool<T> {
    start: usize,
    bump: usize,
    end: usize,
    free: *mut T,
}

// SAFETY: the pool is plain bookkeeping over process-wide metadata memory; its owner serialises
// every use (it lives behind a lock).
unsafe impl<T> Send for Pool<T> {}

impl<T> Pool<T> {
    /// An empty pool (no storage): every `alloc` returns null.
    pub const fn empty() -> Self {
        Pool { start: 0, bump: 0, end: 0, free: ptr::null_mut() }
    }

    /// A pool over `[start, end)` of zeroed metadata memory, aligned for `T`.
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start % align_of::<T>() == 0 && start <= end);
        Pool { start, bump: start, end, free: ptr::null_mut() }
    }

    /// A zero-filled `T` (all fields zero bits; callers write the fields they need), or null
    /// when the pool is exhausted.
    ///
    /// # Safety
    /// `T` must be valid when all-zero or be fully written by the caller before use; the pool
    /// must have been made by `new` over memory that is mapped and zeroed.
    pub unsafe fn alloc(&mut self) -> *mut T {
        debug_assert!(self.start <= self.bump && self.bump <= self.end);
        let size = size_of::<T>().max(size_of::<usize>());
        if !self.free.is_null() {
            let p = self.free;
            // SAFETY: objects on the free list carry the next pointer in their first word.
            self.free = unsafe { *(p as *mut *mut T) };
            // SAFETY: p points to a whole T-sized slot of this pool, no longer in use.
            unsafe { ptr::write_bytes(p as *mut u8, 0, size) };
            return p;
        }
        if self.bump + size > self.end {
            return ptr::null_mut();
        }
        let p = self.bump as *mut T;
        self.bump += size;
        p // fresh metadata memory is already zero
    }

    /// Returns `p` to the pool.
    ///
    /// # Safety
    /// `p` must come from `alloc` of this pool and not be used afterwards.
    pub unsafe fn free(&mut self, p: *mut T) {
        debug_assert!((self.start..self.bump).contains(&(p as usize)));
        // SAFETY: p is a slot of this pool, at least one word long.
        unsafe { *(p as *mut *mut T) = self.free };
        self.free = p;
    }

    /// Bytes of the pool's storage touched so far.
    pub fn touched(&self) -> usize {
        self.bump - self.start
    }
}

//! Metadata memory: one lazily backed mapping, apart from the arena, holding the page heap's
//! tables (page map, huge page descriptors, free-huge-page bitmap, span headers) and a region
//! of generic space that the layers above take pieces of at start-up for their own pools.
//! Nothing in it is ever unmapped, so a pointer into it stays valid memory for the process's
//! life; it is zero until written.
//!
//! Layout. Each table is sized for the whole arena, but a heap uses only a prefix of each (the
//! pools: a suffix, as they hand out from the top down), and every 2 MiB stretch of address
//! space holding touched 4 KiB pages costs each fork a page table to allocate and fill
//! (docs/benchmarks.md, "Figures behind the code"). So the used ends meet at two points, each
//! placed inside one 2 MiB stretch: the span headers (from the top down) and the page map (from
//! the bottom up) at the first, which fits both up to a heap of about 1 GiB; the generic space
//! (from the top down: the thread heaps and their messages, together) and the bitmap and
//! descriptors (from the bottom up) at the second.
//!
//! ```text
//! [ generic space <- | bitmap, descriptors -> ... | ... <- span headers | page map -> ... ]
//!                    ^ second point                                     ^ first point
//! ```
//!
//! Also [`Space`] and [`Pool`]: fixed-size objects in a piece of metadata, for span headers
//! here and for the thread heaps' own objects above.

use super::backing::Backing;
use crate::span::Span;
use crate::units::{HUGE_SIZE, PAGES_PER_HUGE};
use core::ptr;

use super::desc::HpDesc;

/// Where, in its 2 MiB stretch, the point between the span headers and the page map lies: the
/// headers grow 16 times as fast as the map (128 bytes per 64 KiB span against 8), so they get
/// the larger share below it.
const SPANS_POINT: usize = HUGE_SIZE - (128 << 10);
/// Where, in its 2 MiB stretch, the point between the generic space and the tables above it
/// lies (thread heaps below, the bitmap and descriptors above).
const CLIENT_POINT: usize = HUGE_SIZE / 2;

/// The first address at or above `a` that lies `offset` bytes into a 2 MiB stretch.
fn at_offset(a: usize, offset: usize) -> usize {
    let base = a - a % HUGE_SIZE + offset;
    if base >= a { base } else { base + HUGE_SIZE }
}

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
    /// Span header storage: `[spans, spans_end)`, handed out from the top down.
    pub spans: usize,
    spans_end: usize,
    /// Generic space for the layers above, handed out by `take` from the top down.
    client: Space,
    /// The mapping: `[start, end)`.
    start: usize,
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
        let client = client.next_multiple_of(64);
        // Room to move each meeting point into place: address space only, backed as touched.
        let len =
            (client + HUGE_SIZE + word_bytes + desc_bytes + span_bytes + HUGE_SIZE + map_bytes).next_multiple_of(4096);
        let start = backing.map_metadata(len)?;
        let client_top = at_offset(start + client, CLIENT_POINT);
        let free_words = client_top;
        let desc = free_words + word_bytes;
        let spans = desc + desc_bytes;
        let page_map = at_offset(spans + span_bytes, SPANS_POINT);
        debug_assert!(page_map + map_bytes <= start + len);
        Some(Meta {
            pages,
            words,
            page_map,
            desc,
            free_words,
            spans,
            spans_end: page_map,
            client: Space::new(start, client_top),
            start,
            end: start + len,
        })
    }

    /// The whole metadata mapping: `(start, bytes)`.
    pub fn range(&self) -> (usize, usize) {
        (self.start, self.end - self.start)
    }

    /// The span header storage.
    pub fn span_space(&self) -> Space {
        Space::new(self.spans, self.spans_end)
    }

    /// Takes `bytes` of the generic space, aligned to `align` (a power of two), below what
    /// was taken before; `None` when it is used up.
    pub fn take(&mut self, bytes: usize, align: usize) -> Option<usize> {
        self.client.take(bytes, align)
    }
}

/// Space for fixed-size objects in a piece of metadata, handed out from the top down (the
/// used end meets another table's, see the module doc); one space may serve several
/// [`Pool`]s, whose objects then lie together. Not thread-safe: its owner keeps it under a
/// lock.
///
/// Invariant: `[top, end)` has been handed out; the space is never unmapped, so a pointer into
/// it stays valid memory for the process's life.
#[derive(Debug)]
pub struct Space {
    start: usize,
    top: usize,
    end: usize,
}

impl Space {
    /// No space: every pool over it is exhausted.
    pub const fn empty() -> Self {
        Space { start: 0, top: 0, end: 0 }
    }

    /// The space `[start, end)` of zeroed metadata memory.
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start <= end);
        Space { start, top: end, end }
    }

    /// `size` bytes aligned to `align` (a power of two) below what was handed out before;
    /// `None` when the space is used up.
    fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        debug_assert!(align.is_power_of_two());
        let at = self.top.checked_sub(size)? & !(align - 1);
        if at < self.start {
            return None;
        }
        self.top = at;
        Some(at)
    }

    /// Whether `p` lies in what was handed out.
    fn holds(&self, p: usize) -> bool {
        (self.top..self.end).contains(&p)
    }

    /// Bytes of the space handed out so far.
    pub fn touched(&self) -> usize {
        self.end - self.top
    }
}

/// Fixed-size objects of type `T`: a free list threaded through freed objects, and fresh ones
/// from a [`Space`]. Not thread-safe: its owner keeps it, and its space, under a lock.
pub struct Pool<T> {
    free: *mut T,
}

// SAFETY: the pool is plain bookkeeping over process-wide metadata memory; its owner serialises
// every use (it lives behind a lock).
unsafe impl<T> Send for Pool<T> {}

impl<T> Pool<T> {
    /// Bytes an object takes (it must hold the free list's link).
    const SIZE: usize = if size_of::<T>() > size_of::<usize>() { size_of::<T>() } else { size_of::<usize>() };
    /// Its alignment: at least a cache line, so that no two objects (of two threads' heaps,
    /// say) share one.
    const ALIGN: usize = if align_of::<T>() > 64 { align_of::<T>() } else { 64 };

    /// A pool with nothing freed yet.
    pub const fn new() -> Self {
        Pool { free: ptr::null_mut() }
    }

    /// A zero-filled `T` (all fields zero bits; callers write the fields they need): a freed
    /// one, else a fresh one from `space`; null when `space` is used up.
    ///
    /// # Safety
    /// `T` must be valid when all-zero or be fully written by the caller before use; `space`
    /// must be the one this pool has always used, over memory that is mapped and zeroed.
    pub unsafe fn alloc(&mut self, space: &mut Space) -> *mut T {
        if !self.free.is_null() {
            let p = self.free;
            debug_assert!(space.holds(p as usize));
            // SAFETY: objects on the free list carry the next pointer in their first word.
            self.free = unsafe { *(p as *mut *mut T) };
            // SAFETY: p points to a whole slot of this pool, no longer in use.
            unsafe { ptr::write_bytes(p as *mut u8, 0, Self::SIZE) };
            return p;
        }
        // Fresh metadata memory is already zero.
        space.take(Self::SIZE, Self::ALIGN).map_or(ptr::null_mut(), |p| p as *mut T)
    }

    /// Returns `p` to the pool.
    ///
    /// # Safety
    /// `p` must come from `alloc` of this pool and not be used afterwards.
    pub unsafe fn free(&mut self, p: *mut T) {
        // SAFETY: p is a slot of this pool, at least one word long.
        unsafe { *(p as *mut *mut T) = self.free };
        self.free = p;
    }
}

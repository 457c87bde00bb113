//! Spans: runs of 64 KiB pages handed out by the page heap, either as a *slab* of one size
//! class owned by one thread heap, or as one *large* allocation. Their headers live in
//! metadata memory (never inside the span), so the data of a span starts on a 64 KiB boundary
//! and power-of-two blocks are naturally aligned.
//!
//! The header is shared by two layers, which is why it sits below both: the page heap owns
//! `start`, `pages`, `size` and `zeroed` and maps every page of a span to its header; the
//! thread heaps above own the slab fields. The page heap never reads those, and a slab names
//! the heap that owns it by an opaque id (`owner`), not by its type.

use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

/// A free block: its first word links to the next free block; its second word holds the
/// free mark (`heap::free_mark`) while the block is on its slab's free list, and is cleared
/// when the block is handed out. Every block is at least 16 bytes.
#[repr(C)]
pub struct Block {
    /// The next free block, or null.
    pub next: *mut Block,
    /// The free mark, or 0 once handed out.
    pub mark: usize,
}

/// A span header, two cache lines: the first holds what is fixed while the span is handed out
/// and read by any thread (a free reads `owner`, `start`, `div` and `starts_below`; one from
/// another thread `block_size` too); the second what the owning heap's thread writes on every
/// allocation and free. Kept apart, a consumer thread freeing a producer's blocks does not pull
/// the line the producer is writing (docs/benchmarks.md, "Figures behind the code").
///
/// Ownership: the slab fields of the second line belong to the owning heap's thread, except
/// `used`, which `stats()` also reads (hence an atomic, written by the owner with plain relaxed
/// stores: no read-modify-write on the fast path). The first line is written only under the
/// page heap lock, while the span is not in use by any heap (and `size` of a large span by
/// its resize, under the lock).
#[repr(C, align(64))]
pub struct Span {
    /// First byte of the span.
    pub start: usize,
    /// Slab: the id of the thread heap that owns it, or of the central heap of the shared
    /// classes (opaque to this layer, never 0 and never [`NO_OWNER`]); `NO_OWNER` for large
    /// spans, 0 for the empty sentinel. A free compares it
    /// with the freeing thread's id first: equal means a slab of that thread's own heap.
    pub owner: usize,
    /// Slab: `ceil(2^64 / block_size)`. For an offset `n` below 2^32, `n * div` (wrapping) is
    /// below `div` exactly when `n` is a multiple of the block size (Lemire, Kaser and Kurz,
    /// "Faster remainder by direct computation", 2019), and for the multiple `k * block_size`
    /// it is `k * e`, where `e = div * block_size - 2^64` (below `block_size`).
    pub div: u64,
    /// Slab: the bound below which `offset * div` names a block start: `capacity * e` (see
    /// `div`) when `e > 0`; when `e == 0` (a power-of-two block size, which divides the slab,
    /// so every multiple in it is a block) `div` itself. One compare checks "a multiple of the
    /// block size, and not past the last block".
    pub starts_below: u64,
    /// Large: the bytes requested (what `stats()` counts as in use).
    pub size: usize,
    /// Slab: the block size; 0 for a large span.
    pub block_size: u32,
    /// Slab: blocks the span holds.
    pub capacity: u32,
    /// Length in 64 KiB pages.
    pub pages: u32,
    /// Slab: the size class.
    pub class: u8,
    /// The span's memory was zero when it was handed out (fresh from the OS).
    pub zeroed: bool,
    /// Every page is in the page map (slabs), not only the first (large spans).
    pub whole: bool,
    _line: [u8; 9],
    /// Second line, the owner's. Slab: the local free list.
    pub free: *mut Block,
    /// Slab: blocks handed out and not yet freed back to the owner, with [`FULL`] set while
    /// the slab is out of its heap's lists for want of free blocks (one word, so that a free
    /// tests "now empty, full, or none out" with one compare).
    pub used: AtomicU32,
    /// Slab: blocks from index `bump` on have never been handed out.
    pub bump: u32,
    /// List links (a heap's slab list, or the pool's free list).
    pub next: *mut Span,
    /// List links.
    pub prev: *mut Span,
}

const _: () = assert!(core::mem::offset_of!(Span, free) == 64 && core::mem::size_of::<Span>() == 128);

/// The `owner` of a span no thread heap owns (a large span): no heap's id, so a free's first
/// test, "is this a slab of my heap", fails for it as for another thread's slab.
pub const NO_OWNER: usize = usize::MAX;

/// The bit of a slab's `used` word set while the slab is out of its heap's lists: from when an
/// allocation finds it with no free block until enough blocks are back (the thread heaps' rule).
/// Below it, the count; no slab holds 2^31 blocks.
pub const FULL: u32 = 1 << 31;

impl Span {
    /// A span with nothing in it: the value of the sentinel every empty slot of a heap points
    /// to, so the fast path never tests for null (that one is never written), and of a heap's
    /// caches of shared classes before their first use.
    #[allow(clippy::declare_interior_mutable_const)] // only initialises statics' fields
    pub const EMPTY: Span = Span {
        free: ptr::null_mut(),
        used: AtomicU32::new(0),
        bump: 0,
        capacity: 0,
        block_size: 0,
        div: 0,
        starts_below: 0,
        whole: false,
        _line: [0; 9],
        class: 0,
        zeroed: false,
        owner: 0,
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
        start: 0,
        pages: 0,
        size: 0,
    };

    /// Blocks handed out (relaxed read: exact for the owner, a snapshot for others).
    #[inline]
    pub fn used(&self) -> u32 {
        self.used_word() & !FULL
    }

    /// The `used` word: the count, and [`FULL`] while the slab is out of its lists.
    #[inline]
    pub fn used_word(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    /// Sets the `used` word (owner only; a plain store, no read-modify-write).
    #[inline]
    pub fn set_used_word(&self, v: u32) {
        self.used.store(v, Ordering::Relaxed);
    }

    /// Whether the slab is marked full (in none of its heap's lists).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.used_word() & FULL != 0
    }

    /// Whether this is a slab (as opposed to a large allocation).
    #[inline]
    pub fn is_slab(&self) -> bool {
        self.block_size != 0
    }

    /// Bytes the span covers.
    #[inline]
    pub fn bytes(&self) -> usize {
        (self.pages as usize) << crate::units::PAGE_SHIFT
    }
}

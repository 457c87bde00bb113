//! Thread heaps: the front end. Each thread owns a heap of slabs, one list per size class;
//! allocation pops the current slab's free list, a free by the owner pushes onto it. Neither
//! takes a lock or does an atomic read-modify-write. This file holds the heap and the fast
//! paths; the rest is one concern per file:
//!
//! - [`size_class`]: sizes to classes (a small table up to 1 KiB, computed past it);
//! - [`thread_heap`]: the heap's fields, the sentinel, the thread-local slot (initial-exec TLS);
//! - [`slab`]: a slab's free list (the owner's allocation and free), refills, new slabs from
//!   the page heap, retiring empty ones;
//! - [`remote`], [`stack`]: frees from other threads, carried home in batches on lock-free
//!   stacks;
//! - [`central`]: the classes past 4 KiB, whose slabs the process shares, reached through a
//!   small cache in each thread;
//! - [`storage`]: where heaps and messages live, and the heaps of exited threads;
//! - [`lifecycle`]: a thread's first allocation and its exit;
//! - [`misuse`]: free marks and the checks that catch double and interior frees;
//! - `check` (tests and the `check` feature): the walk that checks the invariants below.
//!
//! Files depend one way: `size_class`, `misuse`, `stack`, then `thread_heap`; `slab` and
//! `storage` on those; `central` on `slab`; `remote` on `slab` and `storage`; `lifecycle` on
//! `remote` and `central`; this file on all.
//!
//! The thread heaps sit on the page heap and know only its span and metadata interface; the
//! page heap knows nothing of them (a slab names its heap by an opaque id).
//!
//! Invariants:
//! - `current[c]` is the head of class `c`'s list of non-full slabs, or `EMPTY_SPAN`, and
//!   `last[c]` its last slab while it has one; a slab that stops being full joins at the end
//!   (for a shared class, `current[c]` is the heap's cache of it instead: see `central`);
//! - `direct[g] == current[class_of(16 * g)]` for every granule `g` (sizes up to 1 KiB);
//! - a slab is in its heap's list iff not marked `FULL` (marked when an allocation finds it
//!   with no free block, until `slab::rejoin_at` blocks are back or none is out); `used`
//!   counts its blocks not yet back on its free list (blocks in a message or an inbox count
//!   as used);
//! - `span.owner` never changes while the slab has live blocks, so a freeing thread always
//!   finds the right inbox.

pub mod central;
#[cfg(any(test, feature = "check"))]
pub mod check;
pub mod lifecycle;
pub mod misuse;
pub mod remote;
pub mod size_class;
pub mod slab;
pub mod stack;
pub mod storage;
pub mod thread_heap;

use crate::span::Span;
use size_class::class_of;
use thread_heap::{Heap, empty_heap, heap_of, id, thread_heap};

/// A block of at least `size` bytes (`size <= SMALL_MAX`, already rounded for its alignment)
/// from the current slab of its class (or the thread's cache of a shared class): the whole
/// fast path of allocation. Null when that slab has no free block (or the thread has no heap
/// yet: the sentinel's slabs never do); then [`alloc_small`] is the way on.
///
/// # Safety
/// None beyond those of `GlobalAlloc::alloc`; marked unsafe because it hands out raw memory.
#[inline(always)]
pub unsafe fn pop_small(size: usize) -> *mut u8 {
    debug_assert!(size <= size_class::SMALL_MAX);
    let heap = thread_heap();
    // Heap points to this thread's heap or the sentinel, whose slots point to live spans;
    // only this thread touches its own heap.
    if size <= size_class::TABLE_MAX {
        let g = size_class::granule(size);
        // SAFETY: g < GRANULES (size <= TABLE_MAX), class_of(size) < NCLASS; `heap` is this
        // thread's heap or the sentinel, both live.
        debug_assert!(unsafe { (*heap).direct[g] == (*heap).current[class_of(size)] });
        // SAFETY: g < GRANULES (size <= TABLE_MAX); the entry is this thread's heap's slab of
        // the class, or the sentinel, as `pop` asks.
        return unsafe { slab::pop(*(*heap).direct.get_unchecked(g)) };
    }
    // SAFETY: class_of(size) < NCLASS (size <= SMALL_MAX); `heap` is this thread's heap or the
    // sentinel, both live, and its `current` entries are slabs of it or the sentinel's.
    unsafe { slab::pop(*(*heap).current.get_unchecked(class_of(size))) }
}

/// Allocates a block of at least `size` bytes (`size <= SMALL_MAX`, already rounded for its
/// alignment). Null when memory is exhausted, or when the allocator has not started (the
/// entry points start it and ask again).
///
/// # Safety
/// As for [`pop_small`].
#[inline]
pub unsafe fn alloc_small(size: usize) -> *mut u8 {
    // SAFETY: size <= SMALL_MAX, rounded for its alignment: this function's contract, and
    // `pop_small`'s.
    let b = unsafe { pop_small(size) };
    if !b.is_null() {
        return b;
    }
    // SAFETY: the same size, under the same contract, which `alloc_small_slow` asks for too.
    unsafe { alloc_small_slow(size) }
}

/// [`alloc_small`] once [`pop_small`] has found nothing: the thread's first allocation, frees
/// from other threads brought home, a refill.
///
/// # Safety
/// As for [`pop_small`].
#[inline]
pub unsafe fn alloc_small_slow(size: usize) -> *mut u8 {
    debug_assert!(size <= size_class::SMALL_MAX);
    // SAFETY: class_of(size) < NCLASS (size <= SMALL_MAX); thread_heap() is this thread's heap
    // or the sentinel.
    unsafe { alloc_slow(thread_heap(), class_of(size)) }
}

/// The slow path of `alloc_small`: sets the thread up if it has no heap, gives a large block
/// of the small phase a span of its own, else brings frees from other threads home and refills
/// class `c`.
///
/// # Safety
/// `heap` must be this thread's heap or the sentinel; `c < NCLASS`.
#[cold]
#[inline(never)]
unsafe fn alloc_slow(mut heap: *mut Heap, c: usize) -> *mut u8 {
    debug_assert!(c < size_class::NCLASS);
    if heap == empty_heap() {
        heap = lifecycle::thread_start();
        if heap.is_null() {
            return core::ptr::null_mut();
        }
    }
    // A class past the small phase's slabs has none while the phase lasts, so its every
    // allocation comes here.
    let p = if size_class::class_size(c) > size_class::SMALL_PHASE_SLAB_MAX && crate::pageheap::small_phase() {
        crate::pageheap::process_heap::alloc_block(size_class::class_size(c), crate::units::PAGE_SIZE).0
    } else {
        // SAFETY: heap is this thread's own heap (not the sentinel); c is a class.
        unsafe {
            remote::flush_remote(heap);
            remote::drain_inbox(heap);
            if size_class::is_shared(c) { central::refill(heap, c) } else { slab::refill(heap, c) }
        }
    };
    // The refill is complete and no lock is held: the helper may be started here.
    crate::pageheap::collapser::start_if_promoted();
    p
}

/// Whether `span` is a slab of this thread's heap: the first test of every free (a large
/// span's owner is `NO_OWNER`, no heap's id; the sentinel's id, 0, is no slab's owner).
///
/// # Safety
/// `span` must be a live span header.
#[inline(always)]
pub unsafe fn is_own_slab(span: *mut Span) -> bool {
    debug_assert!(!span.is_null());
    // SAFETY: span is a live header (caller); `owner` does not change while the span holds a
    // live block, and this thread's own slabs change owner only on this thread.
    unsafe { (*span).owner == id(thread_heap()) }
}

/// Frees a block of a slab of this thread's heap. `span` is the slab holding `p`. A pointer
/// that is not the start of a block (an interior pointer) aborts with a message.
///
/// # Safety
/// `span` must be a live slab of this thread's heap ([`is_own_slab`]) whose pages hold `p`,
/// and `p` a live block of it unless the program misuses the heap (which is detected where
/// cheap, see `slab::free_local`).
#[inline(always)]
pub unsafe fn free_own(p: *mut u8, span: *mut Span) {
    // SAFETY: span is a live slab (caller).
    debug_assert!(unsafe { is_own_slab(span) && (*span).is_slab() });
    // SAFETY: span is a live slab whose pages hold p (caller).
    let b = unsafe { misuse::block_at(p, span) };
    // SAFETY: b is a block of span, a slab of this thread's heap (caller), so this thread
    // alone touches the slab's local fields.
    unsafe { slab::free_local(thread_heap(), span, b) }
}

/// Frees a block of another heap's slab: a central slab's goes to this thread's cache of its
/// class (`central`), another thread's is carried home by `remote`. A pointer that is not the
/// start of a block aborts with a message.
///
/// # Safety
/// `span` must be a live slab of another heap whose pages hold `p`, and `p` a live block of it
/// unless the program misuses the heap.
#[inline]
pub unsafe fn free_foreign(p: *mut u8, span: *mut Span) {
    // SAFETY: span is a live slab (caller).
    debug_assert!(unsafe { (*span).is_slab() });
    // SAFETY: span is a live slab whose pages hold p (caller).
    let b = unsafe { misuse::block_at(p, span) };
    // SAFETY: b is a live block of span (caller), so span.owner is stable: the central heap's
    // `CENTRAL_ID`, or the id of a live heap other than this thread's.
    unsafe {
        let owner = (*span).owner;
        if owner == thread_heap::CENTRAL_ID {
            central::free(span, b)
        } else {
            remote::free_remote(thread_heap(), heap_of(owner), b)
        }
    }
}

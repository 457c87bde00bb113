//! The dispatch every front door (the `GlobalAlloc` impl, the C ABI) calls: small requests to
//! the thread heap, the rest to the page heap; start-up on the first allocation.

use crate::heap::{
    self,
    size_class::{TABLE_MAX, small_size_for},
};
use crate::options::Config;
use crate::os::fatal_misuse;
use crate::pageheap::{self, LOOKUP};
use crate::runtime;
use crate::span::Span;
use crate::units::HUGE_SIZE;
use core::ptr;

/// Allocates `size` bytes aligned to `align` (a power of two). Null when out of memory.
///
/// # Safety
/// `align` must be a power of two.
#[inline(always)]
pub unsafe fn alloc(config: &Config, size: usize, align: usize) -> *mut u8 {
    // SAFETY: `align` is a power of two (this function's contract, `alloc_fast`'s too).
    let p = unsafe { alloc_fast(size, align) };
    if !p.is_null() {
        return p;
    }
    alloc_slow(config, size, align)
}

/// The fast path of [`alloc`]: a block from the current slab of its class, or null (then
/// [`alloc_slow`] is the way on). Front doors that must do more on the slow path (set `errno`)
/// call the two themselves, so that the fast path is a leaf that saves no register.
///
/// # Safety
/// `align` must be a power of two.
#[inline(always)]
pub unsafe fn alloc_fast(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    // The commonest requests first, with one compare: the class comes from a table.
    if size <= TABLE_MAX && align <= 16 {
        // SAFETY: size <= TABLE_MAX < SMALL_MAX, and every block is 16-aligned.
        return unsafe { heap::pop_small(size) };
    }
    match small_size_for(size, align) {
        // SAFETY: s <= SMALL_MAX, rounded for align.
        Some(s) => unsafe { heap::pop_small(s) },
        None => ptr::null_mut(),
    }
}

/// Everything [`alloc_fast`] does not do: refills, a thread's first allocation, start-up,
/// large requests. Null when out of memory.
#[cold]
#[inline(never)]
pub fn alloc_slow(config: &Config, size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    match small_size_for(size, align) {
        Some(s) => {
            // SAFETY: s <= SMALL_MAX, rounded for align; the fast path found nothing.
            let p = unsafe { heap::alloc_small_slow(s) };
            if !p.is_null() {
                return p;
            }
            alloc_small_cold(config, s)
        }
        None => alloc_large(config, size, align).0,
    }
}

/// The thread heap had nothing: start the allocator if it has not started, and ask again
/// (a null then is out of memory).
#[cold]
#[inline(never)]
fn alloc_small_cold(config: &Config, size: usize) -> *mut u8 {
    if !runtime::ensure_init(config) {
        return ptr::null_mut();
    }
    // SAFETY: as in alloc.
    unsafe { heap::alloc_small(size) }
}

/// Like [`alloc`], but the memory is zero. Memory fresh from the OS is known to be zero and
/// is not cleared again (large spans); small blocks are cleared.
///
/// # Safety
/// As for [`alloc`].
#[inline]
pub unsafe fn alloc_zeroed(config: &Config, size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    match small_size_for(size, align) {
        Some(s) => {
            // SAFETY: `s` is at most SMALL_MAX and rounded for `align` (`small_size_for`), as
            // `alloc_small` asks.
            let mut p = unsafe { heap::alloc_small(s) };
            if p.is_null() {
                p = alloc_small_cold(config, s);
            }
            if !p.is_null() {
                // SAFETY: p holds at least `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
        None => {
            let (p, zeroed) = alloc_large(config, size, align);
            if !p.is_null() && !zeroed {
                // SAFETY: p holds at least `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
    }
}

/// A span of its own for a large or strongly aligned request. Returns the address and
/// whether the memory is known to be zero.
#[cold]
#[inline(never)]
fn alloc_large(config: &Config, size: usize, align: usize) -> (*mut u8, bool) {
    if !runtime::ensure_init(config) {
        return (ptr::null_mut(), false);
    }
    let r = pageheap::process_heap::alloc_block(size, align);
    pageheap::collapser::start_if_promoted();
    r
}

/// Frees `p` (null is ignored). Misuse that can be seen cheaply aborts with a message, as
/// glibc's does: a pointer hugeheap did not hand out (or a large allocation freed twice), an
/// interior pointer, a double free of a small block (see `heap::free_local`).
///
/// The fast path (a block of a slab of this thread's heap) is inlined into every front door;
/// other threads' blocks, large spans, null and foreign pointers go out of line.
///
/// # Safety
/// `p` must be null or a live allocation of this allocator, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    let span = LOOKUP.span_of(p as usize);
    if span.is_null() {
        return free_unmapped(p);
    }
    // SAFETY: `p` is a live allocation of this allocator (this function's contract), and the
    // page map entry of a live allocation's page is its span, live while the block is.
    unsafe {
        if heap::is_own_slab(span) {
            heap::free_own(p, span);
        } else {
            free_other(p, span);
        }
    }
}

/// `free` of a block of another thread's slab, or of a large span.
///
/// # Safety
/// `span` must be the live span holding `p`, not a slab of this thread's heap.
#[inline(never)]
unsafe fn free_other(p: *mut u8, span: *mut Span) {
    // SAFETY: span is the live span holding p (caller).
    unsafe {
        if (*span).is_slab() {
            heap::free_foreign(p, span);
        } else {
            free_large(p, span);
        }
    }
}

/// `free` of a pointer in no span: null is ignored, anything else is misuse.
#[cold]
#[inline(never)]
fn free_unmapped(p: *mut u8) {
    if !p.is_null() {
        fatal_misuse("free(): invalid pointer (not allocated by hugeheap, or already freed)", p as usize);
    }
}

#[cold]
#[inline(never)]
unsafe fn free_large(p: *mut u8, span: *mut Span) {
    debug_assert!(!span.is_null());
    let mut guard = pageheap::process_heap::lock();
    if let Some(ph) = guard.as_mut() {
        // SAFETY: span is the live large span whose first page holds p; checked to be its start.
        unsafe {
            if (*span).start != p as usize {
                drop(guard);
                fatal_misuse("free(): invalid pointer (not the start of an allocation)", p as usize);
            }
            ph.free_span(span);
        }
    }
}

/// The bytes usable at `p` (at least what was asked for).
///
/// # Safety
/// `p` must be a live allocation of this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: p is live (caller), so its span is too.
    unsafe { usable_in(p, LOOKUP.span_of(p as usize)) }
}

/// The bytes usable at `p` in `span` (0 for a null span: not ours).
///
/// # Safety
/// `span` must be null or the live span holding `p`.
unsafe fn usable_in(p: *mut u8, span: *mut Span) -> usize {
    // SAFETY: span is null or the live span holding p (caller).
    debug_assert!(span.is_null() || unsafe { (*span).start } <= p as usize);
    if span.is_null() {
        return 0;
    }
    // SAFETY: `span` is the live span holding `p` (this function's contract; null returned
    // above), so its header is readable.
    unsafe {
        if (*span).is_slab() { (*span).block_size as usize } else { (*span).bytes() - (p as usize - (*span).start) }
    }
}

/// Resizes `p` (holding `old_size` meaningful bytes; `usize::MAX`: all its usable bytes) to
/// `new_size` bytes aligned to `align`.
/// Stays in place when the new size fits the block or span and uses at least half of it, or
/// when a large span can take the free pages right after it; otherwise moves. Null (and `p`
/// untouched) when out of memory.
///
/// # Safety
/// `p` must be a live allocation of this allocator made with alignment `align`.
pub unsafe fn realloc(config: &Config, p: *mut u8, old_size: usize, new_size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && !p.is_null());
    let span = LOOKUP.span_of(p as usize);
    if span.is_null() {
        fatal_misuse("realloc(): invalid pointer (not allocated by hugeheap, or already freed)", p as usize);
    }
    // SAFETY: p is live (caller), and span (not null, checked above) is its span.
    let (usable, large) = unsafe { (usable_in(p, span), !(*span).is_slab()) };
    if new_size <= usable && new_size >= usable / 2 {
        if large {
            resize_large(span, new_size);
        }
        return p;
    }
    if large && new_size > usable {
        if resize_large(span, new_size) {
            return p;
        }
        if align <= HUGE_SIZE {
            // SAFETY: p is live with its span (checked above), and this realloc owns it.
            let q = unsafe { grow_by_moving(p, span, old_size.min(usable), new_size) };
            if !q.is_null() {
                return q;
            }
        }
    }
    // SAFETY: align is a power of two (it came with p).
    let q = unsafe { alloc(config, new_size, align) };
    if !q.is_null() {
        // SAFETY: both blocks hold at least the bytes copied, and are distinct allocations.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size).min(usable));
            free(p);
        }
    }
    q
}

/// Grows large block `p` (of `span`, its first `keep` bytes the contents) into a new span that
/// receives its whole huge pages' memory moved, not copied (`PageHeap::grow_by_moving`);
/// copies the rest, outside the lock, and frees the old span. Null when nothing would move
/// (the caller copies it all).
///
/// # Safety
/// `p` must be a live large allocation of this allocator whose span is `span`, owned by the
/// caller (realloc's), and not used afterwards unless null is returned.
#[cold]
unsafe fn grow_by_moving(p: *mut u8, span: *mut Span, keep: usize, new_size: usize) -> *mut u8 {
    let mut guard = pageheap::process_heap::lock();
    let Some(ph) = guard.as_mut() else { return ptr::null_mut() };
    // SAFETY: span is p's live span (the caller's contract), its header read under the lock.
    if unsafe { (*span).start } != p as usize {
        // An interior pointer: the copy's free says so.
        return ptr::null_mut();
    }
    // SAFETY: span is a live large span; p's contents are the caller's alone until it is freed.
    let Some((new, moved)) = (unsafe { ph.grow_by_moving(span, new_size) }) else {
        return ptr::null_mut();
    };
    // SAFETY: `new` is the live span just made for this caller alone.
    let q = unsafe { (*new).start } as *mut u8;
    drop(guard);
    if keep > moved {
        // SAFETY: the old block holds `keep` bytes and the new one more; what lies past
        // `moved` is still at p (never moved), and the two spans are apart.
        unsafe { ptr::copy_nonoverlapping(p.add(moved), q.add(moved), keep - moved) };
    }
    let mut guard = pageheap::process_heap::lock();
    if let Some(ph) = guard.as_mut() {
        // SAFETY: span is live, its contents copied or moved; `moved` came with it above.
        unsafe { ph.free_moved_from(span, moved) };
    }
    q
}

/// Records a large span's new requested size, growing it in place when it needs more pages.
/// False when it cannot grow in place.
#[cold]
fn resize_large(span: *mut Span, size: usize) -> bool {
    let mut guard = pageheap::process_heap::lock();
    let Some(ph) = guard.as_mut() else { return false };
    // SAFETY: span is the live large span of the pointer being resized; its size and pages
    // are only changed under this lock.
    unsafe { ph.grow_in_place(span, size) }
}

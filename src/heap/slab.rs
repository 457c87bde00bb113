//! Slabs: a run of blocks of one size class, with its own free list. The owner's side of
//! allocation and free (`pop`, `free_local`), refilling a class when its current slab runs out
//! (threading never-used blocks, then a new slab from the page heap), keeping the list of
//! non-full slabs, and giving empty slabs back.
//!
//! "This thread's heap", in the contracts below, is also the central heap for a shared class
//! whose lock this thread holds (`central`): while it holds it, that class's lists and slabs
//! are this thread's alone.

use super::misuse::{self, free_mark};
use super::size_class::{class_size, granules_of, slab_bytes};
use super::thread_heap::{Heap, empty_span, owner_id};
use crate::pageheap;
use crate::span::{Block, FULL, Span};
use crate::units::PAGE_SIZE;
use core::ptr;

/// Takes the first block of `span`'s free list: null when it is empty (the sentinel's always
/// is, and is then never written), and when the block lacks its free mark (it was freed twice
/// or written after it was freed; `refill`, on the slow path, aborts with a message, before
/// the list's next link, which may be the program's data, is followed; see `misuse`).
///
/// # Safety
/// `span` must be a slab of this thread's heap, this thread's cache of a shared class
/// (`central`), or the sentinel.
#[inline(always)]
pub unsafe fn pop(span: *mut Span) -> *mut u8 {
    debug_assert!(!span.is_null());
    // SAFETY: `span` is a slab of this thread's heap, a cache of it, or the sentinel (this
    // function's contract): a live header whose local fields only this thread touches.
    let b = unsafe { (*span).free };
    // SAFETY: a non-null head of a slab's free list is one of the slab's blocks (at least 16
    // bytes, mapped for the process's life), so its mark can be read whatever the program
    // did to it.
    if b.is_null() || unsafe { (*b).mark } != free_mark(b) {
        return ptr::null_mut();
    }
    // SAFETY: `b` is a free block of the slab with its mark intact, so its link is the list's
    // next entry; the slab's fields are this thread's (as above), and clearing the mark hands
    // the block to the program. (The count wraps: a cache's runs below zero, see `central`.)
    unsafe {
        (*span).free = (*b).next;
        (*b).mark = 0;
        (*span).set_used_word((*span).used_word().wrapping_add(1));
    }
    b.cast()
}

/// Puts `b` back on its slab's free list (the owner's side of a free). A slab with no block
/// out aborts with a message, and so does a block freed twice in a row (it heads the list).
/// The block's memory is written, never read: a free of a block long out of the cache does
/// not wait for it (the stores do not hold up what follows; a load would). A block freed twice
/// with other frees in between is caught when the list reaches it again (`pop`).
///
/// The block goes on the list first, and the `used` word is counted down and tested after (a
/// plain read-modify-write, not an atomic one): the count is positive exactly when the slab
/// neither became empty, nor is full (`FULL` makes the word negative as an `i32`), nor had no
/// block out (the count wraps). Tested before the stores, the count (which arrives late, stored
/// by the allocation before) held the free up (docs/benchmarks.md, "Figures behind the code").
/// A full slab has at least one block out: it rejoins its list (the bit cleared) once
/// [`rejoin_at`] blocks are back, and at the latest when none is out.
///
/// # Safety
/// `span` must be a slab of `heap`, this thread's heap, and `b` one of its blocks, counted in
/// `used` unless the program frees it twice.
#[inline(always)]
pub unsafe fn free_local(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: span is a live slab (caller).
    debug_assert!(unsafe { (*span).owner } == owner_id(heap));
    // SAFETY: span is a live slab of this thread's heap, whose free list this thread alone
    // touches; b is one of its blocks (caller).
    let head = unsafe { (*span).free };
    if b == head {
        // Misuse; a tail call (so is the one below), so the fast path saves no registers.
        // SAFETY: the heap, slab and block this call was given, under the contract it was given
        // them with (`free_local_rare` asks the same); `head` is the list's head, just read.
        return unsafe { free_local_rare(heap, span, b, head, 0) };
    }
    // SAFETY: `span` is a live slab of this thread's heap, whose free list and `used` word
    // only this thread writes (`used` is an atomic the owner writes with plain stores); `b` is
    // one of its blocks, which the program no longer uses, so linking it writes over nothing.
    let used = unsafe {
        (*b).next = head;
        (*b).mark = free_mark(b);
        (*span).free = b;
        let used = (*span).used_word().wrapping_sub(1);
        (*span).set_used_word(used);
        used
    };
    if used as i32 <= 0 {
        // SAFETY: the heap, slab and block this call was given, under the contract it was given
        // them with (`free_local_rare`'s too); `used` is the slab's word after this free.
        unsafe { free_local_rare(heap, span, b, head, used) }
    }
}

/// `free_local` of a block freed twice in a row (it heads the list, `head`: aborts before it
/// goes on the list again), or, `b` on the list and `used` counted down, of a block to a slab
/// with no block out (aborts) or whose slab became empty or is full.
///
/// # Safety
/// As for `free_local`; `used` is the slab's `used` word after the free.
#[cold]
#[inline(never)]
unsafe fn free_local_rare(heap: *mut Heap, span: *mut Span, b: *mut Block, head: *mut Block, used: u32) {
    if b == head {
        misuse::double_free(b);
    }
    if used.wrapping_add(1) & !FULL == 0 {
        misuse::double_free_none_out(b);
    }
    // SAFETY: `span` is a slab of `heap`, this thread's heap (this function's contract, which
    // `free_local_slow` asks for).
    unsafe { free_local_slow(heap, span) }
}

/// Finds a block of class `c` in a slab of `heap`: the current slab's, then never-used blocks
/// of it, then a new slab from the page heap. Null when the page heap has no memory (or has
/// not started).
///
/// # Safety
/// `heap` must be this thread's heap (not the sentinel); `c < NCLASS`.
pub unsafe fn refill(heap: *mut Heap, c: usize) -> *mut u8 {
    debug_assert!(heap != super::thread_heap::empty_heap() && c < super::size_class::NCLASS);
    loop {
        // SAFETY: heap is this thread's own heap (caller) and c a class.
        let span = unsafe { (*heap).current[c] };
        if span == empty_span() {
            // SAFETY: heap is this thread's heap.
            let span = unsafe { new_slab(heap, c) };
            if span.is_null() {
                return ptr::null_mut();
            }
            // SAFETY: a fresh, non-full slab of heap, in no list yet.
            unsafe { push_front(heap, span) };
            continue;
        }
        // SAFETY: span heads heap's list of class c: a slab of this thread's heap.
        let b = unsafe { pop(span) };
        if !b.is_null() {
            return b;
        }
        // SAFETY: `span` heads `heap`'s list of class `c` (the sentinel was handled above): a
        // slab of this thread's heap, whose free list only this thread reads.
        let first = unsafe { (*span).free };
        if !first.is_null() {
            misuse::free_block_damaged(first); // pop refused it: it lacks its free mark
        }
        // SAFETY: `span` is a slab of this thread's heap (as above), and only the owner reads
        // `bump` and `capacity`.
        if unsafe { (*span).bump < (*span).capacity } {
            // SAFETY: the free list is empty (pop found nothing) and blocks remain unused.
            unsafe { extend(span) };
            continue;
        }
        // Exhausted: it leaves the list until `rejoin_at` blocks come back.
        // SAFETY: span is in heap's list of its class, and the owner's fields are ours.
        unsafe {
            (*span).set_used_word((*span).used_word() | FULL);
            unlink(heap, span);
        }
    }
}

/// Threads the next never-used blocks of `span` (one 4 KiB page worth, at least one) onto its
/// free list.
///
/// # Safety
/// `span` must be a slab of this thread's heap with `bump < capacity` and an empty free list.
unsafe fn extend(span: *mut Span) {
    // SAFETY: span is a live slab of this thread's heap (caller).
    let (bs, start, bump, capacity) =
        unsafe { ((*span).block_size as usize, (*span).start, (*span).bump, (*span).capacity) };
    // SAFETY: the same live slab of this thread's heap, its free list this thread's.
    debug_assert!(unsafe { (*span).free.is_null() } && bump < capacity);
    let n = (4096 / bs).clamp(1, (capacity - bump) as usize);
    let first = start + bump as usize * bs;
    for i in 0..n {
        let b = (first + i * bs) as *mut Block;
        let next = if i + 1 < n { (first + (i + 1) * bs) as *mut Block } else { ptr::null_mut() };
        // SAFETY: blocks [bump, bump + n) lie inside the span and were never handed out.
        unsafe {
            (*b).next = next;
            (*b).mark = free_mark(b);
        }
    }
    // SAFETY: the owner's fields of a slab of this thread's heap.
    unsafe {
        (*span).free = first as *mut Block;
        (*span).bump += n as u32;
    }
}

/// Gets a new slab of class `c` for `heap` from the page heap (every page in the page map, so
/// that any block can be freed), or null when there is no memory.
///
/// # Safety
/// `heap` must be this thread's heap.
unsafe fn new_slab(heap: *mut Heap, c: usize) -> *mut Span {
    debug_assert!(heap != super::thread_heap::empty_heap());
    let bytes = slab_bytes(c);
    let span = match pageheap::process_heap::lock().as_mut() {
        Some(ph) => ph.alloc_span(bytes, PAGE_SIZE, true),
        None => return ptr::null_mut(),
    };
    if span.is_null() {
        return span;
    }
    // SAFETY: span is fresh and ours (its pages are not handed out yet, so no other thread
    // reaches it through the page map).
    unsafe {
        let bs = class_size(c);
        (*span).block_size = bs as u32;
        let capacity = (bytes / bs) as u32;
        ((*span).div, (*span).starts_below) = misuse::block_check(bs as u32, capacity);
        (*span).class = c as u8;
        (*span).capacity = capacity;
        (*span).bump = 0;
        (*span).free = ptr::null_mut();
        (*span).set_used_word(0);
        (*span).owner = owner_id(heap);
    }
    span
}

/// Puts `span` at the head of its class's list.
///
/// # Safety
/// `span` must be a non-full slab of `heap`, this thread's heap, not in its list.
pub unsafe fn push_front(heap: *mut Heap, span: *mut Span) {
    // SAFETY: `heap` is this thread's heap and `span` a live slab of it outside its class's
    // list (this function's contract): only this thread reads or writes the heap's tables and
    // the slab's links, and the list's head, when not the sentinel, is a live slab of it.
    unsafe {
        debug_assert!(!(*span).is_full() && (*span).owner == owner_id(heap));
        let c = (*span).class as usize;
        let head = (*heap).current[c];
        (*span).prev = ptr::null_mut();
        if head == empty_span() {
            (*span).next = ptr::null_mut();
            (*heap).last[c] = span;
        } else {
            (*span).next = head;
            (*head).prev = span;
        }
        set_current(heap, c, span);
    }
}

/// Makes `span` the head of class `c`'s list, in `current` and in the direct table.
///
/// # Safety
/// `heap` must be this thread's heap, and `span` a slab of class `c` of it or the sentinel.
unsafe fn set_current(heap: *mut Heap, c: usize, span: *mut Span) {
    // SAFETY: `heap` is this thread's heap, whose tables only this thread writes, and `span`
    // a live slab or the sentinel, read only (this function's contract).
    unsafe {
        debug_assert!(span == empty_span() || (*span).class as usize == c);
        (*heap).current[c] = span;
        for g in granules_of(c) {
            (*heap).direct[g] = span;
        }
    }
}

/// Puts `span` at the end of its class's list: a slab that was full and got blocks back waits
/// behind the others, gathering more frees, while allocation goes on from the head. (At the
/// head, a slab given back one block is emptied by the next allocation and the slow path
/// taken again at once: on `hugeheap bench cpath`'s churn of mixed lifetimes, 163,778 slow
/// paths in 1,051,778 allocations at the head, 3,149 at the end.)
///
/// # Safety
/// As for [`push_front`].
pub unsafe fn push_back(heap: *mut Heap, span: *mut Span) {
    // SAFETY: as `push_front`'s contract (this function's): this thread's heap and a live slab
    // of it outside its list; the list's last slab, when the list is not empty, is live.
    unsafe {
        debug_assert!(!(*span).is_full() && (*span).owner == owner_id(heap));
        let c = (*span).class as usize;
        if (*heap).current[c] == empty_span() {
            return push_front(heap, span);
        }
        let tail = (*heap).last[c];
        debug_assert!(!tail.is_null() && (*tail).next.is_null());
        (*span).next = ptr::null_mut();
        (*span).prev = tail;
        (*tail).next = span;
        (*heap).last[c] = span;
    }
}

/// Takes `span` out of its class's list.
///
/// # Safety
/// `span` must be in `heap`'s list of its class.
pub unsafe fn unlink(heap: *mut Heap, span: *mut Span) {
    // SAFETY: `span` is in the list of `heap`, this thread's heap (this function's contract),
    // so it and its neighbours are live slabs whose links only this thread touches.
    unsafe {
        let c = (*span).class as usize;
        let (prev, next) = ((*span).prev, (*span).next);
        if prev.is_null() {
            debug_assert!((*heap).current[c] == span);
            set_current(heap, c, if next.is_null() { empty_span() } else { next });
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            debug_assert!((*heap).last[c] == span);
            (*heap).last[c] = prev;
        } else {
            (*next).prev = prev;
        }
        (*span).next = ptr::null_mut();
        (*span).prev = ptr::null_mut();
    }
}

/// Free blocks a full slab must have back before it rejoins its class's list: an eighth of its
/// blocks, between 1 and 32. A slab that rejoined with one free block was emptied by the next
/// allocation, and when a program's live blocks fill its slabs exactly (a steady set of objects
/// replaced at random), every free and every allocation took the slow path, one slab in and out
/// of the list each time (docs/benchmarks.md, "Figures behind the code"). Held back, those
/// blocks are at most an eighth of a slab each, and the class gets one new slab while they
/// gather.
#[inline]
pub fn rejoin_at(capacity: u32) -> u32 {
    (capacity / 8).clamp(1, 32)
}

/// After a free into `span` that made it empty or was full: back into its list once it has
/// [`rejoin_at`] free blocks (or none out), and back to the page heap if empty and not the
/// class's only slab.
///
/// # Safety
/// `span` must be a slab of `heap`, this thread's heap.
#[cold]
#[inline(never)]
pub unsafe fn free_local_slow(heap: *mut Heap, span: *mut Span) {
    // SAFETY: span is a live slab (caller).
    debug_assert!(unsafe { (*span).owner } == owner_id(heap));
    // SAFETY: `span` is a live slab of `heap`, this thread's heap (this function's contract):
    // its local fields are this thread's alone.
    let (full, used, capacity) = unsafe { ((*span).is_full(), (*span).used(), (*span).capacity) };
    if full {
        debug_assert!(used < capacity);
        if used != 0 && capacity - used < rejoin_at(capacity) {
            return;
        }
        // SAFETY: as above; clearing the full mark leaves the count, and a slab that is no
        // longer full is outside its list, as `push_back` asks.
        unsafe {
            (*span).set_used_word(used);
            push_back(heap, span);
        }
    }
    if used == 0 {
        // SAFETY: an empty slab of this thread's heap, no longer full (its mark was cleared
        // above if it had one), as `retire_if_spare` asks.
        unsafe { retire_if_spare(heap, span) };
    }
}

/// Gives an empty slab back to the page heap unless it is its class's only slab (kept, so a
/// loop that allocates and frees one block does not thrash the page heap) and not so large
/// that the page heap would give it back to the OS at once (in the small phase; see
/// `pageheap::release_from`), as glibc trims what a small process has freed.
///
/// # Safety
/// `span` must be an empty (`used == 0`) non-full slab of `heap`, this thread's heap.
unsafe fn retire_if_spare(heap: *mut Heap, span: *mut Span) {
    // SAFETY: `span` is an empty, non-full slab of `heap`, this thread's heap (this function's
    // contract): in its class's list, its fields and the heap's tables this thread's alone.
    let (c, only) = unsafe {
        debug_assert!((*span).used_word() == 0);
        let c = (*span).class as usize;
        (c, (*heap).current[c] == span && (*span).next.is_null())
    };
    if only && slab_bytes(c) < pageheap::release_from() {
        return;
    }
    // SAFETY: as above: `span` is in `heap`'s list of its class, and once out of it, an empty
    // slab no thread allocates from, whose blocks are all free.
    unsafe {
        unlink(heap, span);
        retire(span);
    }
}

/// Gives an empty slab back to the page heap.
///
/// # Safety
/// `span` must be an empty slab in no list.
pub unsafe fn retire(span: *mut Span) {
    // SAFETY: span is a live slab (caller).
    debug_assert!(unsafe { (*span).used() } == 0);
    if let Some(ph) = pageheap::process_heap::lock().as_mut() {
        // SAFETY: the slab holds no live block and nothing refers to it any more.
        unsafe { ph.free_span(span) };
    }
}

#[cfg(test)]
mod tests {
    use super::rejoin_at;
    use crate::HugeAlloc;
    use crate::pageheap::LOOKUP;
    use core::alloc::{GlobalAlloc, Layout};
    use std::vec::Vec;

    /// A slab that runs out of blocks leaves its class's list, marked full, and rejoins it once
    /// `rejoin_at` of its blocks are back; the heap's invariants hold at every step.
    #[test]
    #[cfg_attr(miri, ignore = "the process's heap over the OS: mmap and madvise, which Miri does not run")]
    fn a_full_slab_leaves_its_list_and_rejoins_it_when_blocks_come_back() {
        let check = super::super::check::this_thread;
        let a = HugeAlloc::new();
        // 3000-byte requests: the 3072-byte class, 21 blocks to a 64 KiB slab.
        let layout = Layout::from_size_align(3000, 16).unwrap();
        let mut blocks = Vec::new();
        for _ in 0..3 * 21 {
            // SAFETY: a non-zero layout; every block is freed once, below.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            blocks.push(p);
            check();
        }
        let slab = LOOKUP.span_of(blocks[0] as usize);
        // SAFETY: the slab of a live block of this thread's heap; read by its owner.
        let (capacity, full) = unsafe { ((*slab).capacity, (*slab).is_full()) };
        assert_eq!(capacity, 21);
        assert!(full, "the first slab, used up while later ones were taken, is out of its list");
        let (own, rest): (Vec<*mut u8>, Vec<*mut u8>) =
            blocks.into_iter().partition(|&p| LOOKUP.span_of(p as usize) == slab);
        assert_eq!(own.len(), capacity as usize);
        for (i, &p) in own.iter().enumerate() {
            // SAFETY: a live block, freed once.
            unsafe { a.dealloc(p, layout) };
            check();
            if (i as u32) + 1 < capacity {
                // SAFETY: the slab keeps a block out, so it is still this heap's.
                let full = unsafe { (*slab).is_full() };
                assert_eq!(full, (i as u32) + 1 < rejoin_at(capacity), "after {} blocks back", i + 1);
            }
        }
        for p in rest {
            // SAFETY: a live block, freed once.
            unsafe { a.dealloc(p, layout) };
            check();
        }
    }
}

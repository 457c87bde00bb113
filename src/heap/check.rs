//! The thread heaps' invariant walk (tests and the `check` feature): a heap's class lists,
//! direct table, and each listed slab's counts and free list, checked against each other,
//! the heap's caches of shared classes, and the central heap's lists (the invariants in the
//! [`super`] and [`super::central`] modules' docs).

use super::central::{cache_max, cache_of, cached, with_central};
use super::misuse::free_mark;
use super::size_class::{GRANULES, NCLASS, SHARED_FROM, class_of, class_size, is_shared};
use super::thread_heap::{CENTRAL_ID, Heap, empty_heap, empty_span, owner_id, thread_heap};
use crate::pageheap::LOOKUP;
use crate::span::{FULL, Span};
use core::ptr;
use core::sync::atomic::Ordering;

/// Checks this thread's heap (nothing if it has none yet), then the central heap; panics on a
/// breach. The thread's lists, caches and slabs' local fields are its alone, so they are
/// walked without a lock; the central heap's, with every shared class's lock held.
pub fn this_thread() {
    let heap = thread_heap();
    if heap != empty_heap() {
        // SAFETY: this thread's own heap, live while the thread is, and not midway through a
        // change (this thread is here, not in the allocator).
        unsafe { check(heap) };
    }
    with_central(|central| {
        // SAFETY: the central heap, whose shared classes' lists no thread changes while every
        // class's lock is held.
        unsafe { check_lists(central, SHARED_FROM..NCLASS) }
    });
}

/// Checks `heap`.
///
/// # Safety
/// `heap` must be a live thread heap that no thread changes during the call.
unsafe fn check(heap: *mut Heap) {
    debug_assert!(!heap.is_null() && heap != empty_heap());
    // SAFETY: the caller's heap, unchanged meanwhile.
    unsafe { check_lists(heap, 0..SHARED_FROM) };
    for c in SHARED_FROM..NCLASS {
        // SAFETY: as above.
        unsafe { check_cache(heap, c) };
    }
    for g in 0..GRANULES {
        // SAFETY: the caller's heap, unchanged meanwhile.
        let (direct, current) = unsafe { ((*heap).direct[g], (*heap).current[class_of(g * 16)]) };
        assert_eq!(direct, current, "direct[{g}] is not its class's current slab");
    }
}

/// Checks `heap`'s cache of shared class `c`: `current[c]` names it or the sentinel, and it
/// lists as many blocks as it counts, at most `cache_max`, each a marked block of a central
/// slab of class `c`.
///
/// # Safety
/// `heap` must be a live thread heap that no thread changes during the call.
unsafe fn check_cache(heap: *mut Heap, c: usize) {
    debug_assert!(is_shared(c));
    // SAFETY: the caller's heap, unchanged meanwhile; c is a shared class.
    let (current, cs) = unsafe { ((*heap).current[c], cache_of(heap, c)) };
    if current == empty_span() {
        return;
    }
    assert_eq!(current, cs, "class {c}: `current` is neither the cache nor empty");
    // SAFETY: the heap's cache, unchanged meanwhile.
    let (mut b, n) = unsafe { ((*cs).free, cached(cs)) };
    assert!(n <= cache_max(c), "class {c}: the cache holds {n} blocks, past its bound");
    let mut seen = 0;
    while !b.is_null() {
        assert!(seen < n, "class {c}: the cache lists more blocks than it counts (a cycle?)");
        let span = LOOKUP.span_of(b as usize);
        assert!(!span.is_null(), "class {c}: cached block {b:p} is in no span");
        // SAFETY: a live span (the page map names only live spans) holding a cached block,
        // which is the allocator's: its link and mark are readable.
        let (owner, class, mark, next) = unsafe { ((*span).owner, (*span).class, (*b).mark, (*b).next) };
        assert_eq!(owner, CENTRAL_ID, "class {c}: cached block {b:p} is not a central slab's");
        assert_eq!(class as usize, c, "class {c}: cached block {b:p} is of class {class}");
        assert_eq!(mark, free_mark(b), "class {c}: cached block {b:p} lost its free mark");
        seen += 1;
        b = next;
    }
    assert_eq!(seen, n, "class {c}: the cache lists fewer blocks than it counts");
}

/// Checks `heap`'s lists of the classes `classes`: each listed slab, and `last`.
///
/// # Safety
/// `heap` must be a live heap whose lists of those classes no thread changes during the call.
unsafe fn check_lists(heap: *mut Heap, classes: core::ops::Range<usize>) {
    let me = owner_id(heap);
    for c in classes {
        // SAFETY: the caller's heap, unchanged meanwhile.
        let (head, last) = unsafe { ((*heap).current[c], (*heap).last[c]) };
        if head == empty_span() {
            continue;
        }
        let mut prev = ptr::null_mut();
        let mut slab = head;
        while !slab.is_null() {
            // SAFETY: listed slabs are live spans of this heap.
            unsafe { check_slab(slab, me, c, prev) };
            prev = slab;
            // SAFETY: a listed slab, live and unchanged meanwhile (this function's contract).
            slab = unsafe { (*slab).next };
        }
        assert_eq!(last, prev, "class {c}: `last` is not the list's last slab");
    }
}

/// Checks one slab of class `c` listed after `prev` in the heap whose id is `owner`: its
/// identity, its links, and that the blocks below `bump` are either out (`used`) or on its free
/// list, each once, every one a block start carrying its free mark.
///
/// # Safety
/// `slab` must be a live span that no thread changes during the call.
unsafe fn check_slab(slab: *mut Span, owner: usize, c: usize, prev: *mut Span) {
    // SAFETY: the caller's slab, unchanged meanwhile.
    let s = unsafe { &*slab };
    assert_eq!(s.owner, owner, "a slab in class {c}'s list belongs to another heap");
    assert_eq!((s.class as usize, s.block_size as usize), (c, class_size(c)), "a slab in class {c}'s list");
    assert_eq!(s.prev, prev, "class {c}: a slab's `prev` link");
    let used = s.used.load(Ordering::Relaxed);
    assert_eq!(used & FULL, 0, "class {c}: a slab marked full is in the list");
    assert!(s.bump <= s.capacity, "class {c}: bump past capacity");
    let (bs, start) = (s.block_size as usize, s.start);
    let mut free = 0u32;
    let mut b = s.free;
    while !b.is_null() {
        let at = b as usize;
        assert!(free < s.bump, "class {c}: the free list is longer than the blocks handed out (a cycle?)");
        assert!(
            at >= start && (at - start) % bs == 0 && (at - start) / bs < s.bump as usize,
            "class {c}: {at:#x} on the free list is no block below bump"
        );
        // SAFETY: a block of the slab (checked just above), on its free list, so the
        // allocator's: its link and mark are readable.
        let (mark, next) = unsafe { ((*b).mark, (*b).next) };
        assert_eq!(mark, free_mark(b), "class {c}: block {at:#x} on the free list lost its free mark");
        free += 1;
        b = next;
    }
    assert_eq!(used + free, s.bump, "class {c}: used + free blocks != blocks handed out");
}

//! The shared classes (blocks past 4 KiB, `size_class::is_shared`): their slabs are the
//! process's, in the central heap, and each thread keeps a small cache of their blocks.
//!
//! A slab of one of these classes holds 16 blocks or fewer. Kept per thread, as the smaller
//! classes' are, every thread that used a class held a slab of it part empty, and the blocks
//! one thread freed served no other: four threads keeping a few dozen objects each of 4-64 KiB
//! held 55 MiB of slabs for 38 MiB of blocks (docs/benchmarks.md, "A multi-thread trace, and
//! its memory"). Shared, a class has one set of slabs for the process, as tcmalloc's central
//! lists are.
//!
//! The fast paths take no lock. A thread's cache of class `c` is a span header in its heap
//! (`Heap::caches`) whose free list holds the cached blocks, each with its free mark: once the
//! class is used, `current[c]` names it, and allocation pops from it exactly as from a slab.
//! A free of a block of a central slab, by any thread, pushes it onto the freeing thread's
//! cache. Only an empty cache (refill, on the slow path of allocation) or one past its bound
//! (flush) takes the class's lock, for a batch of blocks.
//!
//! A cache's count is `capacity - used` (wrapping): `capacity` is what it held when last
//! filled or flushed, and `used`, zero then, is counted up by `slab::pop` and down by a free.
//!
//! Lock order: a class's lock, then the page heap's (new and retired slabs). The fork handlers
//! take every class's lock before the page heap's.
//!
//! Invariants:
//! - every block of a central slab is out (in the program's hands, or in a thread's cache:
//!   both count as `used` in its slab) or on that slab's free list;
//! - a block in a cache carries its free mark; a cache holds at most [`cache_max`] blocks
//!   after every free;
//! - `current[c]` of a thread heap, for a shared class, is that heap's cache of `c` or
//!   `EMPTY_SPAN`, and its `last[c]` is unused.

use super::misuse::{self, free_mark};
use super::size_class::{NCLASS, NSHARED, SHARED_FROM, class_size, is_shared};
use super::slab;
use super::thread_heap::{Heap, central_heap, empty_heap, thread_heap};
use crate::pageheap::LOOKUP;
use crate::span::{Block, Span};
use crate::sync::{SpinGuard, SpinLock};
use core::ptr;

/// Bytes of blocks a thread keeps at most in its cache of one class (at least one block).
/// A batch moves half of it: the lock is taken once per half a cache of allocations or frees
/// that do not balance within the thread.
pub const CACHE_BYTES: usize = 32 << 10;

/// The most blocks a cache of class `c` holds after a free.
#[inline]
pub fn cache_max(c: usize) -> u32 {
    debug_assert!(is_shared(c) && c < NCLASS);
    CACHE_MAX[c - SHARED_FROM] as u32
}

/// [`cache_max`] of each shared class, computed at build time (a free reads it; a division
/// there cost a few dozen cycles).
static CACHE_MAX: [u8; NSHARED] = {
    let mut t = [0u8; NSHARED];
    let mut i = 0;
    while i < NSHARED {
        let n = CACHE_BYTES / class_size(SHARED_FROM + i);
        t[i] = if n == 0 { 1 } else { n as u8 };
        i += 1;
    }
    t
};

const _: () = assert!(CACHE_BYTES / 4096 <= u8::MAX as usize);

/// How many blocks a refill or a flush leaves in a cache of class `c` (a refill also returns
/// one more).
#[inline]
fn batch(c: usize) -> u32 {
    cache_max(c) / 2
}

/// A lock on its own cache line (threads taking different classes' locks do not share one).
#[repr(align(64))]
struct ClassLock(SpinLock<()>);

/// Per shared class, the lock over its lists and slabs in the central heap.
static LOCKS: [ClassLock; NSHARED] = [const { ClassLock(SpinLock::new(())) }; NSHARED];

/// Takes shared class `c`'s lock.
#[inline]
fn lock(c: usize) -> SpinGuard<'static, ()> {
    debug_assert!(is_shared(c) && c < NCLASS);
    LOCKS[c - SHARED_FROM].0.lock()
}

/// `heap`'s cache of shared class `c`.
///
/// # Safety
/// `heap` must be a live heap; `c` a shared class.
#[inline]
pub(super) unsafe fn cache_of(heap: *mut Heap, c: usize) -> *mut Span {
    debug_assert!(is_shared(c) && c < NCLASS);
    // SAFETY: a live heap (caller); c - SHARED_FROM < NSHARED (c is a shared class), so the
    // place is in bounds; no reference is made.
    unsafe { &raw mut (*heap).caches[c - SHARED_FROM] }
}

/// Blocks in cache `cs` (`capacity - used`, see the module's doc).
///
/// # Safety
/// `cs` must be a cache of a live heap that no other thread changes meanwhile (its thread's,
/// or one the invariant walk reads).
#[inline]
pub(super) unsafe fn cached(cs: *mut Span) -> u32 {
    // SAFETY: this thread's cache (caller), live with its heap.
    unsafe { (*cs).capacity.wrapping_sub((*cs).used_word()) }
}

/// Sets cache `cs` to hold the `n` blocks listed from `list`, and makes it `heap`'s current
/// of class `c`.
///
/// # Safety
/// `heap` must be this thread's heap and `cs` its cache of `c`; `list` must hold `n` free,
/// marked blocks of class `c` of central slabs, or be null with `n == 0`.
#[inline]
unsafe fn set_cache(heap: *mut Heap, c: usize, cs: *mut Span, list: *mut Block, n: u32) {
    debug_assert!(list.is_null() == (n == 0));
    // SAFETY: this thread's heap and cache (caller): only this thread touches them.
    unsafe {
        (*cs).free = list;
        (*cs).capacity = n;
        (*cs).set_used_word(0);
        (*cs).class = c as u8;
        (*heap).current[c] = cs;
    }
}

/// Allocates a block of shared class `c` when the cache had none: takes the class's lock
/// once for the block returned and [`batch`] more for the cache. Null when the page heap has
/// no memory.
///
/// # Safety
/// `heap` must be this thread's heap (not the sentinel); `c` a shared class.
pub unsafe fn refill(heap: *mut Heap, c: usize) -> *mut u8 {
    debug_assert!(heap != empty_heap() && is_shared(c) && c < NCLASS);
    // SAFETY: this thread's heap (caller) and a shared class.
    let cs = unsafe { cache_of(heap, c) };
    // SAFETY: this thread's cache: the list is this thread's.
    let first = unsafe { (*cs).free };
    if !first.is_null() {
        misuse::free_block_damaged(first); // pop refused it: it lacks its free mark
    }
    let central = central_heap();
    let (p, list, n) = {
        let _class = lock(c);
        // SAFETY: the central heap's class `c` is this thread's while it holds the class's
        // lock, as `slab::refill` asks of a heap.
        let p = unsafe { slab::refill(central, c) };
        let (mut list, mut n) = (ptr::null_mut::<Block>(), 0);
        while !p.is_null() && n < batch(c) {
            // SAFETY: as above.
            let b: *mut Block = unsafe { slab::refill(central, c) }.cast();
            if b.is_null() {
                break;
            }
            // SAFETY: a block just handed out of a central slab: ours, unused.
            unsafe {
                (*b).next = list;
                (*b).mark = free_mark(b);
            }
            list = b;
            n += 1;
        }
        (p, list, n)
    };
    // SAFETY: this thread's heap and its cache of `c`; `list` holds `n` marked blocks of `c`.
    unsafe { set_cache(heap, c, cs, list, n) };
    p
}

/// Frees `b`, a block of `span`, a central slab: onto this thread's cache of its class (past
/// the cache's bound, half of it goes back to the central slabs), or, for a thread without a
/// heap (one that is exiting), straight back under the class's lock. A block freed twice in a
/// row (it heads the cache) aborts with a message.
///
/// Out of line: inlined into the entry layer's path for other heaps' blocks, it made every
/// remote free of a small block save and restore five more registers.
///
/// # Safety
/// `span` must be a live central slab and `b` one of its blocks, out, unless the program frees
/// it twice.
#[inline(never)]
pub unsafe fn free(span: *mut Span, b: *mut Block) {
    // SAFETY: a live slab (caller).
    let (c, owner) = unsafe { ((*span).class as usize, (*span).owner) };
    debug_assert!(is_shared(c) && c < NCLASS && owner == super::thread_heap::CENTRAL_ID);
    let heap = thread_heap();
    if heap == empty_heap() {
        // SAFETY: one block of a central slab (caller), out of it.
        return unsafe { give_back(c, b, 1) };
    }
    // SAFETY: this thread's heap; `c` is a shared class (the slab's).
    let cs = unsafe { cache_of(heap, c) };
    // SAFETY: this thread's heap and cache, which only this thread touches; `b` is out (the
    // caller's contract), so linking it writes over nothing the program uses.
    let n = unsafe {
        if (*heap).current[c] != cs {
            set_cache(heap, c, cs, ptr::null_mut(), 0);
        }
        let head = (*cs).free;
        if b == head {
            misuse::double_free(b);
        }
        (*b).next = head;
        (*b).mark = free_mark(b);
        (*cs).free = b;
        (*cs).set_used_word((*cs).used_word().wrapping_sub(1));
        cached(cs)
    };
    if n > cache_max(c) {
        // SAFETY: this thread's heap and its cache of `c`, holding `n` blocks.
        unsafe { flush(heap, c, cs, n, batch(c)) };
    }
}

/// Gives all but the first `keep` of the `n` blocks of `heap`'s cache `cs` of class `c` back to
/// the central slabs.
///
/// Before any block moves, every one is checked in list order, its free mark cleared: a block
/// that lost its mark (written after its free) aborts with a message before its link, which
/// may be the program's data, is followed, and so does a block met a second time (freed twice
/// with other frees between, it makes the list loop back to itself: given back twice, it would
/// be handed out twice). The blocks kept are marked again.
///
/// # Safety
/// `heap` must be this thread's heap (or one being torn down by its thread), `cs` its cache of
/// `c`, holding `n >= keep` blocks.
#[cold]
#[inline(never)]
unsafe fn flush(heap: *mut Heap, c: usize, cs: *mut Span, n: u32, keep: u32) {
    debug_assert!(n >= keep);
    // SAFETY: this thread's cache (caller): its list holds `n` blocks, each with its link and
    // mark, at least 16 bytes mapped for the process's life, so they can be read (and the
    // allocator's fields written) whatever the program did to them; a link is followed only
    // once its block's mark is found intact.
    let rest = unsafe {
        let first = (*cs).free;
        let mut b = first;
        for i in 0..n {
            if (*b).mark != free_mark(b) {
                misuse::free_block_damaged(b);
            }
            (*b).mark = 0;
            if i + 1 < n {
                b = (*b).next;
            }
        }
        let mut prev = ptr::null_mut::<Block>();
        let mut rest = first;
        for _ in 0..keep {
            (*rest).mark = free_mark(rest);
            prev = rest;
            rest = (*rest).next;
        }
        if prev.is_null() {
            set_cache(heap, c, cs, ptr::null_mut(), 0);
        } else {
            (*prev).next = ptr::null_mut();
            set_cache(heap, c, cs, first, keep);
        }
        rest
    };
    // SAFETY: `rest` lists the other `n - keep` blocks, distinct blocks of class `c`'s central
    // slabs (checked above).
    unsafe { give_back(c, rest, n - keep) };
}

/// Puts the `n` blocks listed from `b` (linked through `next`; the last link is not read)
/// back on their central slabs, under class `c`'s lock.
///
/// # Safety
/// The blocks must be `n` distinct blocks of central slabs of class `c`, out of them (`used`),
/// no longer the program's, their links intact.
unsafe fn give_back(c: usize, mut b: *mut Block, n: u32) {
    let central = central_heap();
    let _class = lock(c);
    for i in 0..n {
        // SAFETY: one of the blocks given, its link intact (caller).
        let next = unsafe { (*b).next };
        let span = LOOKUP.span_of(b as usize);
        debug_assert!(!span.is_null());
        // SAFETY: a block of a central slab of class `c` (caller), whose lists this thread may
        // change while it holds the class's lock, as `free_local` asks of a heap's slab.
        unsafe { slab::free_local(central, span, b) };
        b = if i + 1 < n { next } else { ptr::null_mut() };
    }
}

/// Gives every block of `heap`'s caches back to the central slabs: its thread is exiting.
///
/// # Safety
/// `heap` must be the exiting thread's heap.
pub unsafe fn flush_all(heap: *mut Heap) {
    debug_assert!(heap != empty_heap());
    for c in SHARED_FROM..NCLASS {
        // SAFETY: the exiting thread's heap (caller); a shared class.
        let cs = unsafe { cache_of(heap, c) };
        // SAFETY: the heap's own cache (as above), which only this thread touches.
        if unsafe { (*heap).current[c] } == cs {
            // SAFETY: as above; the cache holds `cached(cs)` blocks.
            unsafe { flush(heap, c, cs, cached(cs), 0) };
        }
    }
}

/// Takes every shared class's lock before `fork()` (before the page heap's), so that no
/// thread is inside a class's lists when the address space is copied.
pub fn lock_for_fork() {
    for l in &LOCKS {
        l.0.raw_lock();
    }
}

/// Releases the locks taken by [`lock_for_fork`], on either side of the fork.
///
/// # Safety
/// The calling thread must have called `lock_for_fork` (in the child: the forking thread did,
/// and it is the child's only thread).
pub unsafe fn unlock_after_fork() {
    for l in &LOCKS {
        // SAFETY: this thread holds every class's lock without a guard (this function's
        // contract).
        unsafe { l.0.force_unlock() };
    }
}

/// Runs `f` on the central heap with every shared class's lock held (the invariant walk).
#[cfg(any(test, feature = "check"))]
pub fn with_central<R>(f: impl FnOnce(*mut Heap) -> R) -> R {
    let held: [SpinGuard<'static, ()>; NSHARED] = core::array::from_fn(|i| LOCKS[i].0.lock());
    let r = f(central_heap());
    drop(held);
    r
}

#[cfg(test)]
mod tests {
    use super::{cache_max, cached};
    use crate::HugeAlloc;
    use crate::heap::check;
    use crate::heap::size_class::{class_of, is_shared};
    use crate::heap::thread_heap::{CENTRAL_ID, thread_heap};
    use crate::pageheap::LOOKUP;
    use core::alloc::{GlobalAlloc, Layout};
    use std::collections::BTreeSet;
    use std::vec::Vec;

    /// Blocks of a shared class one thread allocated and another freed serve the freeing
    /// thread's next allocations (its cache, then the central slabs its cache gave them back
    /// to), not new slabs: a class's slabs are the process's. The caches stay within their
    /// bound and every slab's counts exact throughout (`check`).
    #[test]
    #[cfg_attr(miri, ignore = "the process's heap over the OS: mmap and madvise, which Miri does not run")]
    fn a_thread_reuses_the_shared_blocks_another_allocated() {
        // A class of its own in this test binary (no other test allocates 11,000 bytes), so
        // that other tests' threads neither take nor leave its blocks meanwhile.
        let layout = Layout::from_size_align(11_000, 16).unwrap();
        let c = class_of(11_000);
        assert!(is_shared(c));
        // 200 blocks, many times a cache's bound, from many slabs.
        let a = HugeAlloc::new();
        // SAFETY: a non-zero layout; every block is freed once, below or by the thread.
        let mine: Vec<usize> = (0..200).map(|_| unsafe { a.alloc(layout) } as usize).collect();
        assert!(mine.iter().all(|&p| p != 0));
        let slabs: BTreeSet<usize> = mine.iter().map(|&p| LOOKUP.span_of(p) as usize).collect();
        let mut capacity = 0;
        for &s in &slabs {
            let s = s as *mut crate::span::Span;
            // SAFETY: the span of live blocks: its owner and capacity do not change while they
            // are live.
            let (owner, cap) = unsafe { ((*s).owner, (*s).capacity) };
            assert_eq!(owner, CENTRAL_ID, "a block past 4 KiB is a central slab's");
            capacity += cap as usize;
        }
        check::this_thread();
        // Every other block goes to the thread; those kept hold every slab (so none goes back
        // to the page heap meanwhile).
        let kept: Vec<usize> = mine.iter().copied().step_by(2).collect();
        let given: Vec<usize> = mine.iter().copied().skip(1).step_by(2).collect();
        std::thread::spawn(move || {
            let a = HugeAlloc::new();
            // A thread gets its heap (and caches) at its first allocation; until then its
            // frees go straight to the central slabs.
            let small = Layout::from_size_align(64, 16).unwrap();
            // SAFETY: a non-zero layout; freed once, at the end.
            let first = unsafe { a.alloc(small) };
            assert!(!first.is_null());
            for &p in &given {
                // SAFETY: a live block of this layout, freed once.
                unsafe { a.dealloc(p as *mut u8, layout) };
                check::this_thread();
            }
            // SAFETY: this thread's heap and its cache of a shared class, read by this thread.
            let n = unsafe { cached(super::cache_of(thread_heap(), c)) };
            assert!(n >= 1 && n <= cache_max(c), "the cache holds {n} blocks, its bound is {}", cache_max(c));
            // As many allocations take no new slab: each is a block of the slabs the other
            // thread's came from, one this thread freed unless it was free there already.
            // SAFETY: a non-zero layout; every block is freed once, below.
            let again: Vec<usize> = (0..given.len()).map(|_| unsafe { a.alloc(layout) } as usize).collect();
            check::this_thread();
            assert!(
                again.iter().all(|&p| slabs.contains(&(LOOKUP.span_of(p) as usize))),
                "the freeing thread took new slabs instead of the blocks it freed"
            );
            let freed: BTreeSet<usize> = given.iter().copied().collect();
            let reused = again.iter().filter(|p| freed.contains(p)).count();
            let free_before = capacity - mine.len();
            assert!(
                reused + free_before >= given.len(),
                "only {reused} of {} allocations reused freed blocks",
                given.len()
            );
            for p in again {
                // SAFETY: a live block of this layout, freed once.
                unsafe { a.dealloc(p as *mut u8, layout) };
            }
            // SAFETY: the block allocated first, freed once.
            unsafe { a.dealloc(first, small) };
            check::this_thread();
        })
        .join()
        .unwrap();
        for p in kept {
            // SAFETY: a live block of this layout, freed once.
            unsafe { a.dealloc(p as *mut u8, layout) };
        }
        check::this_thread();
    }

    /// A thread's exit gives its cached blocks back to the central slabs, where another thread
    /// finds them.
    #[test]
    #[cfg_attr(miri, ignore = "the process's heap over the OS: mmap and madvise, which Miri does not run")]
    fn an_exiting_thread_gives_its_cache_back() {
        // A class of its own in this test binary (no other test allocates 21,000 bytes), so
        // that other tests' threads neither take nor leave its blocks meanwhile.
        let layout = Layout::from_size_align(21_000, 16).unwrap();
        let c = class_of(21_000);
        assert!(is_shared(c) && cache_max(c) >= 1);
        let a = HugeAlloc::new();
        // Two blocks of one slab: the one kept keeps the slab from going back to the page heap
        // once the other is home.
        // SAFETY: a non-zero layout; each block is freed once, below or by the thread.
        let (given, kept) = unsafe { (a.alloc(layout) as usize, a.alloc(layout) as usize) };
        assert!(given != 0 && kept != 0);
        assert_eq!(LOOKUP.span_of(given), LOOKUP.span_of(kept), "the class's first slab holds both");
        std::thread::spawn(move || {
            let a = HugeAlloc::new();
            let small = Layout::from_size_align(64, 16).unwrap();
            // SAFETY: a non-zero layout, freed at once: the thread gets its heap.
            unsafe { a.dealloc(a.alloc(small), small) };
            // SAFETY: a live block of this layout, freed once: it stays in this thread's cache.
            unsafe { a.dealloc(given as *mut u8, layout) };
            // SAFETY: this thread's heap and its cache of a shared class, read by this thread.
            assert_eq!(unsafe { cached(super::cache_of(thread_heap(), c)) }, 1);
        })
        .join()
        .unwrap();
        check::this_thread();
        // The exited thread's block is on its central slab again: this thread's next
        // allocations of the class (from its cache, then refills from the central slabs)
        // find it.
        // SAFETY: a non-zero layout; every block is freed once, below.
        let got: Vec<usize> = (0..=2 * cache_max(c)).map(|_| unsafe { a.alloc(layout) } as usize).collect();
        assert!(got.contains(&given), "the exited thread's cached block was not given back");
        for p in got.into_iter().chain([kept]) {
            // SAFETY: a live block of this layout, freed once.
            unsafe { a.dealloc(p as *mut u8, layout) };
        }
        check::this_thread();
    }
}

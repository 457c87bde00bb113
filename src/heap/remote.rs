//! Frees from other threads. A free from another thread reads nothing of the block (it was last
//! written on another core, and a load would wait for that cache line: docs/benchmarks.md,
//! "Figures behind the code") and, but for the fallback below, writes nothing: the freeing
//! thread records the pointer in a *message* for that owner (an array of up to
//! `MSG_SLOTS` pointers) and posts the message to the owner's inbox, a lock-free stack, with
//! one compare-and-swap when it is full, when room is needed for another owner's (a thread
//! fills up to `BATCHES` messages at once, one per owner, the last used first), or when the
//! freeing thread next takes its slow path or exits. The owner drains its inbox in its slow path: it walks
//! the arrays (sequential reads) and puts every block back on its slab's free list, so every
//! block comes home and slab counts stay exact; the emptied message goes back to the heap that
//! filled it. Walking arrays instead of a chain threaded through the freed blocks matters: the
//! blocks were last touched on another core, and a chain makes the owner wait for each cache
//! miss in turn (docs/benchmarks.md, "Figures behind the code").
//!
//! Messages come from a bounded pool (see `storage`); a thread that has none (the pool is
//! used up, or the thread has no heap of its own, as during its exit) falls back to threading
//! the block onto the owner's second inbox, a chain of loose blocks.
//!
//! Invariants:
//! - a message is in exactly one place: one of a heap's `batch` slots (being filled, by that
//!   heap's thread only), an owner's `msg_inbox`, a heap's `spare` list or `returned` stack (empty), or
//!   being drained by its owner; `origin` is the heap whose spare it becomes again;
//! - blocks in a thread's batch count as used by their slab until handed over (a thread that
//!   frees other threads' blocks and then neither allocates nor exits keeps at most
//!   `BATCHES * MSG_SLOTS` of them from their owners).

use super::slab::free_local;
use super::stack::push_list;
use super::storage;
use super::thread_heap::{ABANDONED, BATCHES, CLAIMED, Heap, empty_heap};
use super::thread_heap::{MSG_SLOTS, RemoteMsg};
use crate::pageheap::LOOKUP;
use crate::span::Block;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

/// Tests only (feature `check`): send every remote free the loose way, as when the message
/// pool is used up.
pub static LOOSE_ONLY: AtomicBool = AtomicBool::new(false);

/// Frees `b`, a block of `owner`'s, from this thread (whose heap is `heap`): recorded in the
/// thread's message for that owner, posted when the message is full or when room is needed
/// for another owner's.
///
/// # Safety
/// `heap` must be this thread's heap (or the sentinel), `owner` a live heap other than it, and
/// `b` a live block of `owner`'s.
#[inline(never)]
pub unsafe fn free_remote(heap: *mut Heap, owner: *mut Heap, b: *mut Block) {
    debug_assert!(heap != owner && !owner.is_null());
    // The first batch is the one used last: its load does not wait for `owner`, so a thread
    // freeing one owner's blocks (a consumer) pays nothing for the others.
    // SAFETY: the batches are this thread's alone (heap is this thread's heap or the sentinel,
    // whose batches stay null).
    let mut m = unsafe { (*heap).batch[0] };
    // SAFETY: a message is live, and ours, while it is one of our batches.
    if m.is_null() || unsafe { (*m).owner != owner || (*m).count == MSG_SLOTS } {
        // SAFETY: heap is this thread's heap or the sentinel.
        m = unsafe { batch_for(heap, owner) };
        if m.is_null() {
            // No message to be had: thread the block onto the owner's loose inbox.
            // SAFETY: b is ours to hand over; owner is a live heap (heaps are never unmapped).
            unsafe {
                (*b).next = ptr::null_mut();
                push_list(&(*owner).inbox, b, b);
                take_home_if_abandoned(owner);
            }
            return;
        }
    }
    // SAFETY: m is this thread's batch with count < MSG_SLOTS: the slot is in bounds.
    unsafe {
        *(*m).blocks.get_unchecked_mut((*m).count) = b;
        (*m).count += 1;
    }
}

/// Makes this thread's first batch one for `owner` with room, and returns it: the owner's
/// batch if the thread has one (moved to the front; posted and replaced if full), else a new
/// message (the last batch is posted to make room). Null if there is no message to be had (the
/// sentinel heap, or the pool used up).
///
/// # Safety
/// `heap` must be this thread's heap or the sentinel.
#[inline(never)]
unsafe fn batch_for(heap: *mut Heap, owner: *mut Heap) -> *mut RemoteMsg {
    debug_assert!(!owner.is_null() && heap != owner);
    if heap == empty_heap() || cfg!(feature = "check") && LOOSE_ONLY.load(Ordering::Relaxed) {
        return ptr::null_mut();
    }
    // SAFETY: `heap` is this thread's own heap (not the sentinel, checked above), whose batch
    // slots only this thread touches; each holds null or a live message of this thread's.
    let found = unsafe { (*heap).batch.iter().position(|&m| !m.is_null() && (*m).owner == owner) };
    let at = match found {
        Some(i) => i,
        None => {
            // SAFETY: this thread's own heap (as above); BATCHES - 1 is a slot.
            unsafe { post(heap, BATCHES - 1) };
            BATCHES - 1
        }
    };
    // Move it (or the empty slot) to the front, the others down one.
    // SAFETY: this thread's own heap's slots (as above); no other borrow of them is live.
    let m = unsafe {
        let batch = &mut (*heap).batch;
        batch[..=at].rotate_right(1);
        batch[0]
    };
    // SAFETY: the slots hold null or live messages of this thread's (as above).
    if !m.is_null() && unsafe { (*m).count } < MSG_SLOTS {
        return m;
    }
    // SAFETY: this thread's own heap (as above); 0 is a slot.
    unsafe { post(heap, 0) };
    // SAFETY: this thread's own heap, not the sentinel (as above).
    let m = unsafe { new_batch(heap) };
    if !m.is_null() {
        // SAFETY: `m` is an empty message now this thread's; slot 0 of this thread's own heap
        // was just emptied by `post`.
        unsafe {
            (*m).owner = owner;
            (*heap).batch[0] = m;
        }
    }
    m
}

/// An empty message for this thread to fill: a spare one, one its owners gave back, or one
/// from the pool; null when the pool is used up.
///
/// # Safety
/// `heap` must be this thread's heap (not the sentinel).
unsafe fn new_batch(heap: *mut Heap) -> *mut RemoteMsg {
    debug_assert!(heap != empty_heap());
    // SAFETY: the spare list is this thread's; the returned stack is an atomic whose messages,
    // taken with this Acquire swap, are empty and ours.
    let mut m = unsafe {
        if (*heap).spare.is_null() {
            (*heap).spare = (*heap).returned.swap(ptr::null_mut(), Ordering::Acquire);
        }
        (*heap).spare
    };
    if m.is_null() {
        m = storage::new_message();
        if m.is_null() {
            return m;
        }
        // SAFETY: a fresh message from the pool, ours.
        unsafe { (*m).origin = heap };
    } else {
        // SAFETY: m heads this thread's spare list.
        unsafe { (*heap).spare = (*m).next };
    }
    // SAFETY: m is ours (fresh, or off our spare list).
    unsafe {
        (*m).next = ptr::null_mut();
        (*m).count = 0;
    }
    m
}

/// Posts every batch of this thread to its owner's inbox.
///
/// # Safety
/// `heap` must be this thread's heap (not the sentinel).
pub unsafe fn flush_remote(heap: *mut Heap) {
    debug_assert!(heap != empty_heap());
    for slot in 0..BATCHES {
        // SAFETY: `heap` is this thread's heap, not the sentinel (this function's contract, as
        // `post` asks), and slot < BATCHES.
        unsafe { post(heap, slot) };
    }
}

/// Posts this thread's batch in `slot`, if any, to its owner's inbox.
///
/// # Safety
/// `heap` must be this thread's heap (not the sentinel); `slot < BATCHES`.
unsafe fn post(heap: *mut Heap, slot: usize) {
    debug_assert!(heap != empty_heap() && slot < BATCHES);
    // SAFETY: the batches are this thread's (caller).
    let m = unsafe { core::mem::replace(&mut (*heap).batch[slot], ptr::null_mut()) };
    if m.is_null() {
        return;
    }
    // SAFETY: `m` was this thread's batch, so it stays this thread's alone until the push
    // below publishes it.
    let (count, owner) = unsafe { ((*m).count, (*m).owner) };
    if count == 0 {
        // SAFETY: an empty message of this thread's goes on its own heap's spare list, which
        // only this thread touches (`heap` is this thread's heap: this function's contract).
        unsafe {
            (*m).next = (*heap).spare;
            (*heap).spare = m;
        }
        return;
    }
    // SAFETY: the owner is a live heap (heaps are never unmapped); the push's compare-and-swap
    // (Release) publishes the message's slots to the owner's Acquire swap, and this thread
    // touches `m` no more.
    unsafe {
        push_list(&(*owner).msg_inbox, m, m);
        take_home_if_abandoned(owner);
    }
}

/// Brings home, on behalf of `owner`'s exited thread, the frees just posted to it: frees into
/// the heap of a thread that has exited would otherwise wait in its inbox until a new thread
/// adopts it (never, in a program whose threads are done), keeping their slabs from going
/// back to the page heap. The posting thread claims the heap (`ABANDONED` → `CLAIMED`, back
/// when done; an adopting thread waits for that) and drains it as its owner would.
///
/// # Safety
/// `owner` must be a live heap.
#[inline]
pub unsafe fn take_home_if_abandoned(owner: *mut Heap) {
    debug_assert!(!owner.is_null());
    // SAFETY: heaps are never unmapped; the state is an atomic.
    let state = unsafe { &(*owner).state };
    if state.load(Ordering::Relaxed) == ABANDONED
        && state.compare_exchange(ABANDONED, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok()
    {
        // SAFETY: the claim gives this thread the heap's slabs until it is released below, as
        // if it were the heap's own thread (the Acquire pairs with the Release that ended the
        // last owner's or claimer's use).
        unsafe { drain_inbox(owner) };
        state.store(ABANDONED, Ordering::Release);
    }
}

/// Frees `b`, coming home to `heap` from another thread: its span is looked up again, as the
/// owner's thread sees it.
///
/// # Safety
/// `heap` must be this thread's heap (or one it has claimed), and `b` a live block of one of
/// its slabs.
#[inline]
unsafe fn free_home(heap: *mut Heap, b: *mut Block) {
    debug_assert!(!b.is_null() && heap != empty_heap());
    // SAFETY: b is a live block of one of heap's slabs (caller), so its span is mapped.
    unsafe { free_local(heap, LOOKUP.span_of(b as usize), b) }
}

/// Brings every block in `heap`'s inboxes home and sends the emptied messages back.
///
/// # Safety
/// `heap` must be this thread's heap, or an abandoned heap this thread has claimed.
pub unsafe fn drain_inbox(heap: *mut Heap) {
    debug_assert!(heap != empty_heap());
    // SAFETY: the inboxes are atomics of a live heap; messages and loose blocks were published
    // by Release pushes and are taken here with Acquire swaps, after which they are ours.
    let mut m = unsafe {
        if (*heap).msg_inbox.load(Ordering::Relaxed).is_null() {
            ptr::null_mut()
        } else {
            (*heap).msg_inbox.swap(ptr::null_mut(), Ordering::Acquire)
        }
    };
    while !m.is_null() {
        // SAFETY: m is a message taken from our inbox: `count` slots hold our blocks.
        let (next, blocks, origin) = unsafe { ((*m).next, (*m).blocks.get_unchecked(..(*m).count), (*m).origin) };
        for &b in blocks {
            // SAFETY: each is a live block of one of heap's slabs, freed by another thread.
            unsafe { free_home(heap, b) };
        }
        if origin == heap {
            // SAFETY: the spare list is this thread's; m is ours and empty now.
            unsafe {
                (*m).next = (*heap).spare;
                (*heap).spare = m;
            }
        } else {
            // SAFETY: origin is a live heap; m goes back to it through its returned stack.
            unsafe { push_list(&(*origin).returned, m, m) };
        }
        m = next;
    }
    // SAFETY: the loose inbox is an atomic of a live heap; its blocks were published by
    // Release pushes and are taken here with an Acquire swap, after which they are ours.
    let mut b = unsafe {
        if (*heap).inbox.load(Ordering::Relaxed).is_null() {
            return;
        }
        (*heap).inbox.swap(ptr::null_mut(), Ordering::Acquire)
    };
    while !b.is_null() {
        // SAFETY: b heads a chain of our blocks taken from our loose inbox.
        let next = unsafe { (*b).next };
        // SAFETY: b is a live block of one of heap's slabs, freed by another thread.
        unsafe { free_home(heap, b) };
        b = next;
    }
}

#[cfg(test)]
mod tests {
    use crate::HugeAlloc;
    use core::alloc::{GlobalAlloc, Layout};
    use std::collections::BTreeSet;
    use std::vec::Vec;

    /// Blocks one thread frees for another come home: after the freeing thread exits (posting
    /// its batches), the owner hands every one of them out again (after what its own slabs
    /// still had), and its heap's invariants hold throughout (slab counts exact: blocks in
    /// messages count as used until they are home).
    #[test]
    #[cfg_attr(miri, ignore = "the process's heap over the OS: mmap and madvise, which Miri does not run")]
    fn blocks_freed_by_another_thread_come_home_to_their_owner() {
        let a = HugeAlloc::new();
        // Blocks of 1552 bytes (a class holding 39 to a 64 KiB slab), in this test thread's own heap.
        let layout = Layout::from_size_align(1552, 16).unwrap();
        // 300 blocks: several messages' worth, from a few slabs.
        // SAFETY: a non-zero layout; each block is freed once, below.
        let mine: Vec<usize> = (0..300).map(|_| unsafe { a.alloc(layout) } as usize).collect();
        assert!(mine.iter().all(|&p| p != 0));
        super::super::check::this_thread();
        // Another thread frees every other block, in reverse order.
        let theirs: Vec<usize> = mine.iter().copied().step_by(2).rev().collect();
        let sent = theirs.clone();
        std::thread::spawn(move || {
            let a = HugeAlloc::new();
            for p in sent {
                // SAFETY: a live block of this layout, freed once.
                unsafe { a.dealloc(p as *mut u8, layout) };
            }
            super::super::check::this_thread();
        })
        .join()
        .unwrap();
        // The owner allocates until it has had every one of them back: its slabs' unused
        // blocks come first (at most a slab's worth per slab), then its inbox is drained.
        let mut want: BTreeSet<usize> = theirs.into_iter().collect();
        let mut again = Vec::new();
        while !want.is_empty() && again.len() < 3000 {
            // SAFETY: a non-zero layout; every block is freed once, below.
            let p = unsafe { a.alloc(layout) } as usize;
            want.remove(&p);
            again.push(p);
            super::super::check::this_thread();
        }
        assert!(want.is_empty(), "{} blocks freed by the other thread never came back", want.len());
        for p in mine.iter().copied().skip(1).step_by(2).chain(again) {
            // SAFETY: each live block freed once.
            unsafe { a.dealloc(p as *mut u8, layout) };
        }
        super::super::check::this_thread();
    }
}

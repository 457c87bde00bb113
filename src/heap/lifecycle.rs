//! A thread's heap from its first allocation to its exit. A thread starts with the sentinel
//! heap; its first slow path gives it a heap of its own, an abandoned one if there is one
//! (adopted with whatever is still allocated from it and whatever frees are still in flight),
//! else a fresh one. When the thread exits, its heap is flushed (its caches of shared classes
//! too, back to the central slabs), its empty slabs go back to the page heap, and it is left on
//! the abandoned list; frees that arrive after that are brought home by the threads that post
//! them (see `remote`).
//!
//! Thread exit is seen through a thread-specific key (created without allocating; glibc keeps
//! the first 32 keys' values in the thread descriptor); `__cxa_thread_atexit_impl` is not used
//! (it calls `calloc`).

use super::central;
use super::remote::{drain_inbox, flush_remote};
use super::size_class::{GRANULES, NCLASS, SHARED_FROM};
use super::slab::{retire, unlink};
use super::storage::{self, Storage};
use super::thread_heap::{ABANDONED, Heap, OWNED, empty_heap, empty_span, set_thread_heap};
use crate::os::thread::{self, ThreadKey};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The thread-exit key (`usize::MAX`: none).
static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the thread heaps up at start-up (with the page heap's lock released: the fork
/// handlers take the front end's lock first): their storage, the thread-exit key.
pub fn init(s: Storage) {
    storage::install(s);
    if let Some(key) = thread::thread_key_create(thread_exit) {
        KEY.store(key as usize, Ordering::Relaxed);
    }
}

/// Sets this thread up with a heap: an abandoned one if any, else a new one. Null when there
/// is none to be had (the allocator has not started, or the pool is used up).
#[cold]
pub fn thread_start() -> *mut Heap {
    let (heap, fresh) = storage::take_heap();
    if heap.is_null() {
        return heap;
    }
    if fresh {
        // SAFETY: heap is a fresh heap, ours alone; its other fields (the caches too) are
        // valid all zero.
        unsafe {
            (*heap).direct = [empty_span(); GRANULES];
            (*heap).current = [empty_span(); NCLASS];
        }
    } else {
        // SAFETY: heap is live. An abandoned heap may be claimed by a thread bringing frees
        // home: wait until it is done (it never waits for us, so this ends).
        let state = unsafe { &(*heap).state };
        while state.compare_exchange(ABANDONED, OWNED, Ordering::Acquire, Ordering::Relaxed).is_err()
            && state.load(Ordering::Relaxed) != OWNED
        {
            thread::yield_now();
        }
    }
    if !set_thread_heap(heap) {
        // Thread-local storage is being torn down: hand the heap back.
        // SAFETY: the heap was never this thread's.
        unsafe { storage::abandon(heap) };
        return ptr::null_mut();
    }
    let key = KEY.load(Ordering::Relaxed);
    if key != usize::MAX {
        thread::thread_key_set(key as ThreadKey, heap as usize);
    }
    heap
}

/// The thread-exit key's destructor: flushes and abandons the exiting thread's heap.
unsafe extern "C" fn thread_exit(arg: *mut core::ffi::c_void) {
    let heap: *mut Heap = arg.cast();
    if heap.is_null() || heap == empty_heap() {
        return;
    }
    let _ = set_thread_heap(empty_heap());
    // The key's value is only ever set to this thread's heap, which stays exclusively ours
    // until it is abandoned below.
    // SAFETY: heap is this thread's heap.
    unsafe {
        flush_remote(heap);
        drain_inbox(heap);
        central::flush_all(heap);
    }
    // The shared classes have no slabs of the heap's own.
    for c in 0..SHARED_FROM {
        // SAFETY: heap is this thread's heap; c is a class.
        let mut span = unsafe { (*heap).current[c] };
        while span != empty_span() && !span.is_null() {
            // SAFETY: span is a slab in heap's list of class c.
            let (next, empty) = unsafe { ((*span).next, (*span).used() == 0) };
            if empty {
                // SAFETY: an empty slab of heap's list: out of the list, back to the page heap.
                unsafe {
                    unlink(heap, span);
                    retire(span);
                }
            }
            span = next;
        }
    }
    // SAFETY: this thread is done with the heap.
    unsafe { storage::abandon(heap) };
}

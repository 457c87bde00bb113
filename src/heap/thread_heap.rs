//! The thread heap itself: its fields, the messages that carry frees between heaps, the
//! sentinel every thread starts with, and the thread-local pointer to it.

use super::size_class::NCLASS;
use super::stack::Linked;
use crate::span::{Block, Span};
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8};

/// The heap belongs to a running thread.
pub const OWNED: u8 = 0;
/// Its thread exited; it waits on the abandoned list.
pub const ABANDONED: u8 = 1;
/// A thread is bringing frees home on its behalf.
pub const CLAIMED: u8 = 2;

/// Pointers a message carries (the message is 512 bytes, one slot per cache line's worth of
/// header left over).
pub const MSG_SLOTS: usize = 60;

/// A batch of blocks of one heap (`owner`), freed by another thread.
#[repr(C, align(64))]
pub struct RemoteMsg {
    /// Link in an inbox, a spare list or a returned stack.
    pub next: *mut RemoteMsg,
    /// The heap whose spare list the message returns to once drained.
    pub origin: *mut Heap,
    /// The heap the blocks belong to.
    pub owner: *mut Heap,
    /// Slots filled.
    pub count: usize,
    /// The blocks.
    pub blocks: [*mut Block; MSG_SLOTS],
}

const _: () = assert!(size_of::<RemoteMsg>() == 512);

impl Linked for RemoteMsg {
    unsafe fn set_next(p: *mut Self, next: *mut Self) {
        debug_assert!(!p.is_null());
        // SAFETY: caller's contract.
        unsafe { (*p).next = next }
    }
}

impl Linked for Block {
    unsafe fn set_next(p: *mut Self, next: *mut Self) {
        debug_assert!(!p.is_null());
        // SAFETY: caller's contract.
        unsafe { (*p).next = next }
    }
}

/// A thread heap.
#[repr(C)]
pub struct Heap {
    /// Per class, the head of its list of non-full slabs, or `EMPTY_SPAN`.
    pub current: [*mut Span; NCLASS],
    /// Messages of blocks freed by other threads, waiting for this heap's thread.
    pub msg_inbox: AtomicPtr<RemoteMsg>,
    /// Loose blocks freed by other threads that had no message to put them in.
    pub inbox: AtomicPtr<Block>,
    /// The message this thread is filling (this thread's only), or null.
    pub batch: *mut RemoteMsg,
    /// Empty messages ready for use (this thread's only).
    pub spare: *mut RemoteMsg,
    /// Messages this heap filled, emptied and given back by their owners.
    pub returned: AtomicPtr<RemoteMsg>,
    /// Link in the abandoned list.
    pub next_abandoned: *mut Heap,
    /// Who has the heap: its thread (`OWNED`), nobody (`ABANDONED`: exited), or a thread
    /// bringing frees home for it (`CLAIMED`); see `lifecycle` and `remote`.
    pub state: AtomicU8,
}

/// The sentinel slab: no free blocks, never written.
static mut EMPTY_SPAN: Span = Span::EMPTY;

/// The sentinel heap of threads that have none yet: every class points to `EMPTY_SPAN`, so
/// the fast path falls into the slow path, which sets the thread up. Never written.
static mut EMPTY_HEAP: Heap = Heap {
    current: [&raw mut EMPTY_SPAN; NCLASS],
    msg_inbox: AtomicPtr::new(ptr::null_mut()),
    inbox: AtomicPtr::new(ptr::null_mut()),
    batch: ptr::null_mut(),
    spare: ptr::null_mut(),
    returned: AtomicPtr::new(ptr::null_mut()),
    next_abandoned: ptr::null_mut(),
    state: AtomicU8::new(OWNED),
};

std::thread_local! {
    static HEAP: Cell<*mut Heap> = const { Cell::new(&raw mut EMPTY_HEAP) };
}

#[inline]
pub fn empty_span() -> *mut Span {
    &raw mut EMPTY_SPAN
}

#[inline]
pub fn empty_heap() -> *mut Heap {
    &raw mut EMPTY_HEAP
}

/// This thread's heap (the sentinel if it has none, or if thread-local storage is gone).
#[inline]
pub fn thread_heap() -> *mut Heap {
    HEAP.try_with(|h| h.get()).unwrap_or(empty_heap())
}

/// Makes `heap` this thread's heap; false if thread-local storage is being torn down.
pub fn set_thread_heap(heap: *mut Heap) -> bool {
    HEAP.try_with(|c| c.set(heap)).is_ok()
}

/// The opaque id a slab keeps of its heap.
#[inline]
pub fn id(heap: *mut Heap) -> usize {
    heap as usize
}

//! Thread heaps: the front end. Each thread owns a heap of slabs, one list per size class;
//! allocation pops the current slab's free list, a free by the owner pushes onto it. Neither
//! takes a lock or does an atomic read-modify-write.
//!
//! A free from another thread writes nothing into the block: the freeing thread records the
//! pointer in a *message* for that owner (an array of up to `MSG_SLOTS` pointers) and posts
//! the message to the owner's inbox, a lock-free stack, with one compare-and-swap when it is
//! full, when the owner changes, or when the freeing thread next takes its slow path or exits.
//! The owner drains its inbox in its slow path: it walks the arrays (sequential reads) and puts
//! every block back on its slab's free list, so every block comes home and slab counts stay
//! exact; the emptied message goes back to the heap that filled it. Walking arrays instead of a
//! chain threaded through the freed blocks matters: the blocks were last touched on another
//! core, and a chain makes the owner wait for each cache miss in turn (producer/consumer ran
//! 1.65x slower than jemalloc that way, see docs/benchmarks.md).
//!
//! Messages come from a bounded pool; a thread that has none (the pool is used up, or the
//! thread has no heap of its own, as during its exit) falls back to threading the block onto
//! the owner's second inbox, a chain of loose blocks.
//!
//! Heaps are never unmapped: when a thread exits, its heap is flushed and left on an abandoned
//! list for the next new thread to adopt, together with whatever is still allocated from it and
//! whatever frees are still in flight.
//!
//! Invariants:
//! - `current[c]` is the head of class `c`'s list of non-full slabs, or `EMPTY_SPAN`;
//! - a slab is in its heap's list iff `!full`; `used` counts its blocks not yet back on its
//!   free list (blocks in a message or an inbox count as used);
//! - `span.heap` never changes while the slab has live blocks, so a freeing thread always
//!   finds the right inbox;
//! - a message is in exactly one place: a heap's `batch` (being filled, by that heap's thread
//!   only), an owner's `msg_inbox`, a heap's `spare` list or `returned` stack (empty), or
//!   being drained by its owner; `origin` is the heap whose spare it becomes again;
//! - blocks in a thread's batch count as used by their slab until handed over (a thread that
//!   frees other threads' blocks and then neither allocates nor exits keeps at most
//!   `MSG_SLOTS` of them from their owner).

use crate::options::Config;
use crate::pageheap::LOOKUP;
use crate::runtime;
use crate::size_class::{NCLASS, class_of, class_size, slab_bytes};
use crate::span::{Block, Span};
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// Upper bound on heaps alive at once (threads alive at once).
pub const MAX_HEAPS: usize = 16384;

/// Pointers a message carries (the message is 512 bytes, one slot per cache line's worth of
/// header left over).
pub const MSG_SLOTS: usize = 60;

/// Upper bound on messages in existence (each 512 bytes of metadata, touched only when used).
pub const MAX_MSGS: usize = 1 << 16;

/// The secret behind free marks, set once at start-up from the kernel's random bytes.
static FREE_KEY: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0x5bd1_e995_2f6c_a3a7);

/// Sets the secret behind free marks (start-up, before any block is freed).
pub fn set_free_key(k: usize) {
    FREE_KEY.store(k | 1, Ordering::Relaxed);
}

/// The mark a block carries in its second word while it is on its slab's free list: a
/// secret mixed with the block's address, so a program's data matches it only by chance.
#[inline(always)]
fn free_mark(b: *mut Block) -> usize {
    FREE_KEY.load(Ordering::Relaxed) ^ b as usize
}

/// Tests only (feature `check`): send every remote free the loose way, as when the message
/// pool is used up.
pub static LOOSE_ONLY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// A batch of blocks of one heap (`owner`), freed by another thread.
#[repr(C, align(64))]
pub struct RemoteMsg {
    /// Link in an inbox, a spare list or a returned stack.
    next: *mut RemoteMsg,
    /// The heap whose spare list the message returns to once drained.
    origin: *mut Heap,
    /// The heap the blocks belong to.
    owner: *mut Heap,
    /// Slots filled.
    count: usize,
    blocks: [*mut Block; MSG_SLOTS],
}

/// A thread heap.
#[repr(C)]
pub struct Heap {
    current: [*mut Span; NCLASS],
    /// Messages of blocks freed by other threads, waiting for this heap's thread.
    msg_inbox: AtomicPtr<RemoteMsg>,
    /// Loose blocks freed by other threads that had no message to put them in.
    inbox: AtomicPtr<Block>,
    /// The message this thread is filling (this thread's only), or null.
    batch: *mut RemoteMsg,
    /// Empty messages ready for use (this thread's only).
    spare: *mut RemoteMsg,
    /// Messages this heap filled, emptied and given back by their owners.
    returned: AtomicPtr<RemoteMsg>,
    /// Link in the abandoned list.
    next_abandoned: *mut Heap,
    /// `OWNED` by a thread, `ABANDONED` (its thread exited), or `CLAIMED` by a thread that is
    /// bringing frees home on its behalf.
    state: AtomicU8,
}

const OWNED: u8 = 0;
const ABANDONED: u8 = 1;
const CLAIMED: u8 = 2;

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
fn empty_span() -> *mut Span {
    &raw mut EMPTY_SPAN
}

#[inline]
fn empty_heap() -> *mut Heap {
    &raw mut EMPTY_HEAP
}

/// This thread's heap (the sentinel if it has none, or if thread-local storage is gone).
#[inline]
fn thread_heap() -> *mut Heap {
    HEAP.try_with(|h| h.get()).unwrap_or(empty_heap())
}

/// Allocates a block of at least `size` bytes (`size <= SMALL_MAX`, already rounded for its
/// alignment), or null when memory is exhausted.
///
/// `config` is used only if this call starts the allocator.
///
/// # Safety
/// None beyond those of `GlobalAlloc::alloc`; marked unsafe because it hands out raw memory.
#[inline]
pub unsafe fn alloc_small(size: usize, config: &Config) -> *mut u8 {
    let heap = thread_heap();
    let c = class_of(size);
    // SAFETY: c < NCLASS (size <= SMALL_MAX); heap points to this thread's heap or the
    // sentinel, whose slots point to live spans; only this thread touches its own heap.
    unsafe {
        let b = pop(*(*heap).current.get_unchecked(c));
        if !b.is_null() {
            return b;
        }
        alloc_slow(heap, c, config)
    }
}

/// Takes the first block of `span`'s free list (null when it is empty; the sentinel's always
/// is, and is then never written).
///
/// # Safety
/// `span` must be a slab of this thread's heap, or the sentinel.
#[inline(always)]
unsafe fn pop(span: *mut Span) -> *mut u8 {
    // SAFETY: caller's contract: this thread alone touches the slab's local fields.
    unsafe {
        let b = (*span).free;
        if !b.is_null() {
            (*span).free = (*b).next;
            (*b).mark = 0;
            (*span).set_used((*span).used() + 1);
        }
        b.cast()
    }
}

#[cold]
#[inline(never)]
unsafe fn alloc_slow(mut heap: *mut Heap, c: usize, config: &Config) -> *mut u8 {
    if heap == empty_heap() {
        heap = thread_start(config);
        if heap.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: heap is this thread's own heap (not the sentinel), so this thread has exclusive
    // use of its slabs' local fields.
    unsafe {
        flush_remote(heap);
        drain_inbox(heap);
        loop {
            let span = (*heap).current[c];
            if span != empty_span() {
                let b = pop(span);
                if !b.is_null() {
                    return b;
                }
                if (*span).bump < (*span).capacity {
                    extend(span);
                    continue;
                }
                // Exhausted: it leaves the list until a block comes back.
                (*span).full = true;
                unlink(heap, span);
                continue;
            }
            let span = new_slab(heap, c);
            if span.is_null() {
                return ptr::null_mut();
            }
            push_front(heap, span);
        }
    }
}

/// Threads the next never-used blocks of `span` (one 4 KiB page worth, at least one) onto its
/// free list.
///
/// # Safety
/// `span` must be a slab of this thread's heap with `bump < capacity` and an empty free list.
unsafe fn extend(span: *mut Span) {
    // SAFETY: caller's contract; the blocks [bump, bump + n) lie inside the span.
    unsafe {
        let bs = (*span).block_size as usize;
        let n = (4096 / bs).clamp(1, ((*span).capacity - (*span).bump) as usize);
        let first = (*span).start + (*span).bump as usize * bs;
        for i in 0..n {
            let b = (first + i * bs) as *mut Block;
            (*b).next = if i + 1 < n { (first + (i + 1) * bs) as *mut Block } else { ptr::null_mut() };
            (*b).mark = free_mark(b);
        }
        (*span).free = first as *mut Block;
        (*span).bump += n as u32;
    }
}

/// Gets a new slab of class `c` for `heap` from the page heap.
///
/// # Safety
/// `heap` must be this thread's heap.
unsafe fn new_slab(heap: *mut Heap, c: usize) -> *mut Span {
    let bytes = slab_bytes(c);
    let mut rt = runtime::lock();
    let Some(ph) = rt.heap.as_mut() else {
        return ptr::null_mut();
    };
    let span = ph.alloc_span(bytes, crate::units::PAGE_SIZE);
    if span.is_null() {
        return span;
    }
    // SAFETY: span is fresh and ours; mapping all its pages lets interior blocks find it.
    unsafe {
        let bs = class_size(c);
        (*span).block_size = bs as u32;
        (*span).magic = (1u64 << 44).div_ceil(bs as u64);
        (*span).class = c as u8;
        (*span).capacity = (bytes / bs) as u32;
        (*span).bump = 0;
        (*span).free = ptr::null_mut();
        (*span).set_used(0);
        (*span).full = false;
        (*span).heap = heap;
        ph.map_pages((*span).start, (*span).pages as usize, span);
    }
    span
}

/// # Safety
/// `span` must be a non-full slab of `heap`, not in its list.
unsafe fn push_front(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract; heap and span are this thread's.
    unsafe {
        let c = (*span).class as usize;
        let head = (*heap).current[c];
        (*span).prev = ptr::null_mut();
        (*span).next = if head == empty_span() { ptr::null_mut() } else { head };
        if head != empty_span() {
            (*head).prev = span;
        }
        (*heap).current[c] = span;
    }
}

/// # Safety
/// `span` must be in `heap`'s list of its class.
unsafe fn unlink(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let c = (*span).class as usize;
        let (prev, next) = ((*span).prev, (*span).next);
        if prev.is_null() {
            (*heap).current[c] = if next.is_null() { empty_span() } else { next };
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*span).next = ptr::null_mut();
        (*span).prev = ptr::null_mut();
    }
}

/// Frees a block of a slab. `span` is the slab holding `p`. A pointer that is not the start
/// of a block (an interior pointer) aborts with a message.
///
/// # Safety
/// `span` must be the live slab whose pages hold `p`, and `p` a live block of it unless the
/// program misuses the heap (which is detected where cheap, see `free_local`).
#[inline]
pub unsafe fn free_small(p: *mut u8, span: *mut Span) {
    let heap = thread_heap();
    let b = p as *mut Block;
    // SAFETY: span is a live slab (caller), whose start, block size, magic and capacity do not
    // change while it has live blocks; p lies in its pages, so the offset is below 2^20.
    unsafe {
        let off = p as usize - (*span).start;
        let idx = ((off as u64 * (*span).magic) >> 44) as usize;
        if idx * (*span).block_size as usize != off || idx >= (*span).capacity as usize {
            crate::os::fatal_misuse("free(): invalid pointer (not the start of a block)", p as usize);
        }
    }
    // SAFETY: p is a block of span, live by the caller's contract, so span.heap is stable; if
    // it is this thread's heap, this thread alone touches the slab's local fields.
    unsafe {
        let owner = (*span).heap;
        if owner == heap {
            free_local::<true>(heap, span, b);
        } else {
            free_remote(heap, owner, b);
        }
    }
}

/// Puts `b` back on its slab's free list (the owner's side of a free). A slab with no block
/// out aborts with a message, and so does a block already on the list (a double free) when
/// `CHECK_MARK`. Blocks coming home from other threads skip the mark: reading it would load
/// every block last touched on another core, one cache miss each (the freeing thread checked
/// it instead, with the block in its own cache).
///
/// # Safety
/// `span` must be a slab of `heap`, this thread's heap, and `b` one of its blocks, counted in
/// `used` unless the program frees it twice.
#[inline(always)]
unsafe fn free_local<const CHECK_MARK: bool>(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract: this thread owns the slab's local fields; b is a block of the
    // slab, at least 16 bytes.
    unsafe {
        let mark = free_mark(b);
        let used = (*span).used();
        if used == 0 || CHECK_MARK && (*b).mark == mark {
            check_double_free(span, b);
        }
        (*b).next = (*span).free;
        (*b).mark = mark;
        (*span).free = b;
        let used = used - 1;
        (*span).set_used(used);
        if used == 0 || (*span).full {
            free_local_slow(heap, span);
        }
    }
}

/// Frees `b`, a block of `owner`'s, from this thread (whose heap is `heap`): recorded in the
/// thread's message for that owner, posted when the message is full or the owner changes.
///
/// # Safety
/// `heap` must be this thread's heap (or the sentinel), `owner` a live heap other than it, and
/// `b` a live block of `owner`'s.
#[inline]
unsafe fn free_remote(heap: *mut Heap, owner: *mut Heap, b: *mut Block) {
    // SAFETY: caller's contract; the batch belongs to this thread alone, and a message's slots
    // are in bounds while count < MSG_SLOTS. The mark is read volatile: in a double free the
    // owner may be writing it meanwhile (a live block's mark is 0, written before it was
    // handed out).
    unsafe {
        if ptr::read_volatile(&raw const (*b).mark) == free_mark(b) {
            crate::os::fatal_misuse("free(): double free detected (the block is already free)", b as usize);
        }
        let mut m = (*heap).batch;
        if m.is_null() || (*m).owner != owner || (*m).count == MSG_SLOTS {
            m = next_batch(heap, owner);
            if m.is_null() {
                // No message to be had: thread the block onto the owner's loose inbox.
                (*b).next = ptr::null_mut();
                push_chain(owner, b, b);
                take_home_if_abandoned(owner);
                return;
            }
        }
        *(*m).blocks.get_unchecked_mut((*m).count) = b;
        (*m).count += 1;
    }
}

/// Posts this thread's batch and starts an empty message for `owner`; null if there is none
/// to be had (the sentinel heap, or the pool used up).
///
/// # Safety
/// `heap` must be this thread's heap or the sentinel.
#[cold]
#[inline(never)]
unsafe fn next_batch(heap: *mut Heap, owner: *mut Heap) -> *mut RemoteMsg {
    if heap == empty_heap() || cfg!(feature = "check") && LOOSE_ONLY.load(Ordering::Relaxed) {
        return ptr::null_mut();
    }
    // SAFETY: heap is this thread's own heap; messages on its spare list and returned stack
    // are empty and its own.
    unsafe {
        flush_remote(heap);
        if (*heap).spare.is_null() {
            (*heap).spare = (*heap).returned.swap(ptr::null_mut(), Ordering::Acquire);
        }
        let mut m = (*heap).spare;
        if m.is_null() {
            let mut rt = runtime::lock();
            let Some(ph) = rt.heap.as_mut() else {
                return ptr::null_mut();
            };
            m = ph.msgs.alloc();
            if m.is_null() {
                return m;
            }
            (*m).origin = heap;
        } else {
            (*heap).spare = (*m).next;
        }
        (*m).next = ptr::null_mut();
        (*m).owner = owner;
        (*m).count = 0;
        (*heap).batch = m;
        m
    }
}

/// Posts this thread's batch, if any, to its owner's inbox.
///
/// # Safety
/// `heap` must be this thread's heap (not the sentinel).
unsafe fn flush_remote(heap: *mut Heap) {
    // SAFETY: caller's contract; the batch is ours until the compare-and-swap publishes it
    // (Release: the slots are visible to the owner's Acquire swap).
    unsafe {
        let m = (*heap).batch;
        if m.is_null() {
            return;
        }
        (*heap).batch = ptr::null_mut();
        if (*m).count == 0 {
            (*m).next = (*heap).spare;
            (*heap).spare = m;
            return;
        }
        let owner = (*m).owner;
        push_msg(&(*owner).msg_inbox, m);
        take_home_if_abandoned(owner);
    }
}

/// Frees into the heap of a thread that has exited would wait in its inbox until a new thread
/// adopts it (never, in a program whose threads are done), keeping their slabs from going back
/// to the page heap. So the thread that posts them brings them home itself, having claimed the
/// heap (`ABANDONED` → `CLAIMED`, back when done; an adopting thread waits for that).
///
/// # Safety
/// `owner` must be a live heap.
#[inline]
unsafe fn take_home_if_abandoned(owner: *mut Heap) {
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

/// Pushes `m` onto a lock-free stack whose only pop takes the whole stack (so no ABA).
///
/// # Safety
/// `m` must be a message owned by the caller until the compare-and-swap publishes it.
unsafe fn push_msg(stack: &AtomicPtr<RemoteMsg>, m: *mut RemoteMsg) {
    // SAFETY: caller's contract.
    unsafe { push_list(stack, m, m) }
}

/// Pushes the chain `head ..= tail` onto `owner`'s loose inbox.
///
/// # Safety
/// `owner` must be a live heap (heaps are never unmapped) and the chain made of its live
/// blocks, linked from `head` to `tail`, owned by the caller until the CAS publishes it.
unsafe fn push_chain(owner: *mut Heap, head: *mut Block, tail: *mut Block) {
    // SAFETY: caller's contract.
    unsafe { push_list(&(*owner).inbox, head, tail) }
}

/// Something with a `next` link, pushed onto lock-free stacks.
trait Linked {
    /// # Safety
    /// `p` must point to a live object the caller owns.
    unsafe fn set_next(p: *mut Self, next: *mut Self);
}

impl Linked for RemoteMsg {
    unsafe fn set_next(p: *mut Self, next: *mut Self) {
        // SAFETY: caller's contract.
        unsafe { (*p).next = next }
    }
}

impl Linked for Block {
    unsafe fn set_next(p: *mut Self, next: *mut Self) {
        // SAFETY: caller's contract.
        unsafe { (*p).next = next }
    }
}

/// Pushes the list `head ..= tail` onto `stack` with one compare-and-swap loop (Release: the
/// list's contents are visible to the Acquire swap that takes the stack). The stack's only pop
/// takes all of it, so there is no ABA.
///
/// # Safety
/// The list must be linked from `head` to `tail` and owned by the caller until the CAS
/// publishes it.
unsafe fn push_list<T: Linked>(stack: &AtomicPtr<T>, head: *mut T, tail: *mut T) {
    let mut old = stack.load(Ordering::Relaxed);
    loop {
        // SAFETY: caller's contract: tail is ours until published.
        unsafe { T::set_next(tail, old) };
        match stack.compare_exchange_weak(old, head, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(h) => old = h,
        }
    }
}

/// Aborts if `b` is already free: no block of the slab is out, or `b` is on its free list.
/// Returns when the mark was a coincidence of the program's data.
///
/// # Safety
/// As for `free_local`.
#[cold]
#[inline(never)]
unsafe fn check_double_free(span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract: the free list is this thread's and ends in null.
    unsafe {
        if (*span).used() == 0 {
            crate::os::fatal_misuse("free(): double free detected (no block of its slab is in use)", b as usize);
        }
        let mut f = (*span).free;
        while !f.is_null() {
            if f == b {
                crate::os::fatal_misuse("free(): double free detected", b as usize);
            }
            f = (*f).next;
        }
    }
}

#[cold]
#[inline(never)]
unsafe fn free_local_slow(heap: *mut Heap, span: *mut Span) {
    // SAFETY: span is a slab of this thread's heap.
    unsafe {
        if (*span).full {
            (*span).full = false;
            push_front(heap, span);
        }
        if (*span).used() == 0 {
            retire_if_spare(heap, span);
        }
    }
}

/// Gives an empty slab back to the page heap unless it is its class's only slab (kept, so a
/// loop that allocates and frees one block does not thrash the page heap).
///
/// # Safety
/// `span` must be an empty (`used == 0`) non-full slab of this thread's heap.
unsafe fn retire_if_spare(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let c = (*span).class as usize;
        if (*heap).current[c] == span && (*span).next.is_null() {
            return;
        }
        unlink(heap, span);
        retire(span);
    }
}

/// # Safety
/// `span` must be an empty slab in no list.
unsafe fn retire(span: *mut Span) {
    let mut rt = runtime::lock();
    if let Some(ph) = rt.heap.as_mut() {
        // SAFETY: the slab holds no live block and nothing refers to it any more.
        unsafe { ph.free_span(span) };
    }
}

/// Brings every block in `heap`'s inboxes home and sends the emptied messages back.
///
/// # Safety
/// `heap` must be this thread's heap.
unsafe fn drain_inbox(heap: *mut Heap) {
    // SAFETY: heap is ours; the messages and loose blocks in its inboxes hold freed blocks of
    // our slabs, published by Release pushes and taken here with Acquire swaps.
    unsafe {
        if !(*heap).msg_inbox.load(Ordering::Relaxed).is_null() {
            let mut m = (*heap).msg_inbox.swap(ptr::null_mut(), Ordering::Acquire);
            while !m.is_null() {
                let next = (*m).next;
                for &b in (*m).blocks.get_unchecked(..(*m).count) {
                    free_local::<false>(heap, LOOKUP.span_of(b as usize), b);
                }
                let origin = (*m).origin;
                if origin == heap {
                    (*m).next = (*heap).spare;
                    (*heap).spare = m;
                } else {
                    push_msg(&(*origin).returned, m);
                }
                m = next;
            }
        }
        if (*heap).inbox.load(Ordering::Relaxed).is_null() {
            return;
        }
        let mut b = (*heap).inbox.swap(ptr::null_mut(), Ordering::Acquire);
        while !b.is_null() {
            let next = (*b).next;
            free_local::<false>(heap, LOOKUP.span_of(b as usize), b);
            b = next;
        }
    }
}

/// Sets this thread up with a heap: an abandoned one if any, else a new one.
#[cold]
fn thread_start(config: &Config) -> *mut Heap {
    if !runtime::ensure_init(config) {
        return ptr::null_mut();
    }
    let heap = {
        let mut rt = runtime::lock();
        let h = rt.abandoned;
        if !h.is_null() {
            // SAFETY: abandoned heaps are live heaps owned by no thread.
            rt.abandoned = unsafe { (*h).next_abandoned };
            h
        } else {
            let Some(ph) = rt.heap.as_mut() else {
                return ptr::null_mut();
            };
            // SAFETY: the pool memory is mapped; the fields are set right below.
            let h = unsafe { ph.heaps.alloc() };
            if h.is_null() {
                return h;
            }
            // SAFETY: h is a fresh heap, ours alone.
            unsafe { (*h).current = [empty_span(); NCLASS] };
            h
        }
    };
    // SAFETY: heap is live. An abandoned heap may be claimed by a thread bringing frees home:
    // wait until it is done (it never waits for us, so this ends).
    let state = unsafe { &(*heap).state };
    while state.compare_exchange(ABANDONED, OWNED, Ordering::Acquire, Ordering::Relaxed).is_err()
        && state.load(Ordering::Relaxed) != OWNED
    {
        crate::os::yield_now();
    }
    let set = HEAP.try_with(|c| c.set(heap)).is_ok();
    if !set {
        // Thread-local storage is being torn down: hand the heap back.
        abandon(heap);
        return ptr::null_mut();
    }
    runtime::register_thread_exit(heap);
    heap
}

fn abandon(heap: *mut Heap) {
    let mut rt = runtime::lock();
    // SAFETY: heap is a live heap that no thread owns any more; the Release hands its slabs to
    // whoever claims or adopts it next.
    unsafe {
        (*heap).next_abandoned = rt.abandoned;
        (*heap).state.store(ABANDONED, Ordering::Release);
    }
    rt.abandoned = heap;
}

/// Flushes and abandons `heap` at thread exit.
///
/// # Safety
/// `heap` must be the exiting thread's heap.
pub unsafe fn thread_done(heap: *mut Heap) {
    if heap.is_null() || heap == empty_heap() {
        return;
    }
    let _ = HEAP.try_with(|c| c.set(empty_heap()));
    // SAFETY: heap is still exclusively ours until abandoned below.
    unsafe {
        flush_remote(heap);
        drain_inbox(heap);
        for c in 0..NCLASS {
            let mut span = (*heap).current[c];
            while span != empty_span() && !span.is_null() {
                let next = (*span).next;
                if (*span).used() == 0 {
                    unlink(heap, span);
                    retire(span);
                }
                span = next;
            }
        }
    }
    abandon(heap);
}

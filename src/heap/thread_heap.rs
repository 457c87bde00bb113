//! The thread heap itself: its fields, the messages that carry frees between heaps, the
//! sentinel every thread starts with, and the thread-local slot naming a thread's heap.

use super::size_class::{GRANULES, NCLASS, NSHARED};
use super::stack::Linked;
use crate::span::{Block, Span};
use core::cell::UnsafeCell;
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

/// How many owners a thread gathers frees for at once. A thread that frees the blocks of
/// several others in turn (a server's workers, freeing what the others sent) would otherwise
/// post a message each time the owner changes, a compare-and-swap for one or two blocks
/// (docs/benchmarks.md, "Figures behind the code").
pub const BATCHES: usize = 4;

const _: () = assert!(BATCHES >= 1);

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
        // SAFETY: `p` points to a live object the caller owns (the trait's contract): no other
        // thread reads or writes its link meanwhile.
        unsafe { (*p).next = next }
    }
}

impl Linked for Block {
    unsafe fn set_next(p: *mut Self, next: *mut Self) {
        debug_assert!(!p.is_null());
        // SAFETY: `p` points to a live object the caller owns (the trait's contract): no other
        // thread reads or writes its link meanwhile.
        unsafe { (*p).next = next }
    }
}

/// A thread heap. The fields its own thread uses come first; those other threads write (the
/// inboxes, the returned stack, the state) start a cache line of their own, so a thread posting
/// frees does not pull the line its owner reads on every allocation (docs/benchmarks.md,
/// "Figures behind the code").
#[repr(C, align(64))]
pub struct Heap {
    /// Per granule of request sizes up to `TABLE_MAX` (16 bytes, `size_class::granule`), the
    /// head of its class's list: `current[class_of(16 * g)]`, kept so by `slab::set_current`.
    /// The fast path of allocation finds a size's slab with one load, not two (the class, then
    /// the slab): the load on which everything after it waits when the size was just computed
    /// (mimalloc's `pages_free_direct`).
    pub direct: [*mut Span; GRANULES],
    /// Per class, the head of its list of non-full slabs, or `EMPTY_SPAN`.
    pub current: [*mut Span; NCLASS],
    /// Per class, the last slab of that list (meaningless while the list is empty).
    pub last: [*mut Span; NCLASS],
    /// The messages this thread is filling, one per owner at most, the one used last first
    /// (this thread's only); null where none.
    pub batch: [*mut RemoteMsg; BATCHES],
    /// Empty messages ready for use (this thread's only).
    pub spare: *mut RemoteMsg,
    /// Link in the abandoned list.
    pub next_abandoned: *mut Heap,
    _pad: [u8; OWNER_PAD],
    /// Messages of blocks freed by other threads, waiting for this heap's thread.
    pub msg_inbox: AtomicPtr<RemoteMsg>,
    /// Loose blocks freed by other threads that had no message to put them in.
    pub inbox: AtomicPtr<Block>,
    /// Messages this heap filled, emptied and given back by their owners.
    pub returned: AtomicPtr<RemoteMsg>,
    /// Who has the heap: its thread (`OWNED`), nobody (`ABANDONED`: exited), or a thread
    /// bringing frees home for it (`CLAIMED`); see `lifecycle` and `remote`.
    pub state: AtomicU8,
    /// Per shared class (`size_class::is_shared`, from `SHARED_FROM`), the thread's cache of
    /// that class's blocks: a span header whose free list holds them, so that `current[c]`
    /// names it once the class is used and the fast path pops from it as from a slab (see
    /// `central`). All zero until then. The owner's, on lines of their own (a span header is
    /// 64-aligned) past those other threads write.
    pub caches: [Span; NSHARED],
}

/// Bytes of the owner's fields, and the padding that ends their last cache line.
const OWNER_BYTES: usize = (GRANULES + 2 * NCLASS + BATCHES + 2) * size_of::<usize>();
const OWNER_PAD: usize = (64 - OWNER_BYTES % 64) % 64;
const _: () = assert!(core::mem::offset_of!(Heap, msg_inbox) % 64 == 0);

/// A value at a fixed address that the fast paths reach through `*mut` pointers and that
/// nothing ever writes: the paths that would write test for the sentinels first (a slab with
/// no free block takes the slow path; a thread whose heap is the sentinel gets one of its own
/// before it changes anything). In an `UnsafeCell` because the pointers handed out are `*mut`
/// and the fast path's types are shared with real slabs and heaps, which are written.
#[repr(transparent)]
struct Sentinel<T>(UnsafeCell<T>);

// SAFETY: a sentinel is never written (see above), so reads of it from any thread cannot race.
unsafe impl<T> Sync for Sentinel<T> {}

/// The sentinel slab: no free blocks.
static EMPTY_SPAN: Sentinel<Span> = Sentinel(UnsafeCell::new(Span::EMPTY));

/// A heap with every class empty: the sentinel's value and the central heap's first.
macro_rules! blank_heap {
    () => {
        Heap {
            direct: [EMPTY_SPAN.0.get(); GRANULES],
            current: [EMPTY_SPAN.0.get(); NCLASS],
            last: [ptr::null_mut(); NCLASS],
            batch: [ptr::null_mut(); BATCHES],
            spare: ptr::null_mut(),
            next_abandoned: ptr::null_mut(),
            _pad: [0; OWNER_PAD],
            msg_inbox: AtomicPtr::new(ptr::null_mut()),
            inbox: AtomicPtr::new(ptr::null_mut()),
            returned: AtomicPtr::new(ptr::null_mut()),
            state: AtomicU8::new(OWNED),
            caches: [const { Span::EMPTY }; NSHARED],
        }
    };
}

/// The sentinel heap of threads that have none yet: every class points to `EMPTY_SPAN`, so
/// the fast path falls into the slow path, which sets the thread up.
static EMPTY_HEAP: Sentinel<Heap> = Sentinel(UnsafeCell::new(blank_heap!()));

/// The central heap: the slabs of the shared classes, which every thread's cache takes blocks
/// from and gives them back to (`central`). Only its `current` and `last` entries of shared
/// classes are used, each class's under that class's lock in `central`.
struct Guarded<T>(UnsafeCell<T>);

// SAFETY: every access to the value goes through `central_heap()` and `central`'s per-class
// locks: the fields of a class are read and written only by the thread holding its lock.
unsafe impl<T> Sync for Guarded<T> {}

static CENTRAL: Guarded<Heap> = Guarded(UnsafeCell::new(blank_heap!()));

/// The central heap (its classes' fields only under `central`'s locks).
#[inline]
pub fn central_heap() -> *mut Heap {
    CENTRAL.0.get()
}

/// The owner the central heap's slabs carry: a constant, so that a free tells them from other
/// threads' slabs with one compare. No thread heap's id (those are multiples of 64, the heaps'
/// alignment), nor `span::NO_OWNER`.
pub const CENTRAL_ID: usize = usize::MAX - 1;

const _: () = assert!(CENTRAL_ID % align_of::<Heap>() != 0 && CENTRAL_ID != crate::span::NO_OWNER);

/// The owner the slabs of `heap` carry: its [`id`], or [`CENTRAL_ID`] for the central heap.
#[inline]
pub fn owner_id(heap: *mut Heap) -> usize {
    if heap == central_heap() { CENTRAL_ID } else { id(heap) }
}

/// The sentinel slab's address (never to be written through).
#[inline]
pub fn empty_span() -> *mut Span {
    EMPTY_SPAN.0.get()
}

/// The sentinel heap's address (never to be written through).
#[inline]
pub fn empty_heap() -> *mut Heap {
    EMPTY_HEAP.0.get()
}

/// This thread's heap (the sentinel if it has none).
///
/// The thread-local slot holds the heap's distance from the sentinel, so that its initial
/// value, zero, names the sentinel and the fast path has no test for "no heap yet".
#[inline(always)]
pub fn thread_heap() -> *mut Heap {
    heap_of(slot::get())
}

/// Makes `heap` this thread's heap; false if thread-local storage is being torn down (never,
/// on x86-64).
pub fn set_thread_heap(heap: *mut Heap) -> bool {
    slot::set(id(heap))
}

/// The thread-local slot, on x86-64: eight bytes of static TLS read with the initial-exec
/// model (the thread pointer plus an offset from the GOT), defined and reached in assembly.
/// Rust's `thread_local!` in a shared library gets the general-dynamic model, a call to
/// `__tls_get_addr` on every access, and `-Z tls-model` is nightly-only. Initial-exec is what
/// jemalloc and mimalloc build their preloadable libraries with: a library loaded at start-up
/// (`LD_PRELOAD`, linked, or a Rust executable's own code) has its TLS in the static block, and
/// glibc keeps spare static TLS (hundreds of bytes) for one loaded later with `dlopen`.
///
/// The symbol carries the crate's version, so two versions of hugeheap linked into one
/// program keep slots of their own; it is hidden, so no other object binds to it.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod slot {
    macro_rules! sym {
        () => {
            concat!(
                "__hugeheap_thread_heap_",
                env!("CARGO_PKG_VERSION_MAJOR"),
                "_",
                env!("CARGO_PKG_VERSION_MINOR"),
                "_",
                env!("CARGO_PKG_VERSION_PATCH")
            )
        };
    }

    core::arch::global_asm!(
        concat!(
            ".pushsection .tbss,\"awT\",@nobits\n",
            ".p2align 3\n",
            ".globl ",
            sym!(),
            "\n",
            ".hidden ",
            sym!(),
            "\n",
            ".type ",
            sym!(),
            ",@object\n",
            ".size ",
            sym!(),
            ",8\n",
            sym!(),
            ":\n",
            ".zero 8\n",
            ".popsection"
        ),
        options(att_syntax)
    );

    /// The slot's value.
    #[inline(always)]
    pub fn get() -> usize {
        let v: usize;
        // SAFETY: the two loads read this thread's slot, eight bytes of static TLS defined
        // above (the GOT entry holds its offset from the thread pointer, %fs). Nothing else is
        // touched; flags and stack are left as they were.
        unsafe {
            core::arch::asm!(
                concat!("movq ", sym!(), "@GOTTPOFF(%rip), {v}"),
                "movq %fs:({v}), {v}",
                v = out(reg) v,
                options(att_syntax, nostack, preserves_flags, readonly, pure)
            );
        }
        v
    }

    /// Sets the slot (static TLS lives as long as its thread: always true).
    #[inline(always)]
    pub fn set(v: usize) -> bool {
        // SAFETY: as in `get`: the store writes this thread's slot and nothing else.
        unsafe {
            core::arch::asm!(
                concat!("movq ", sym!(), "@GOTTPOFF(%rip), {t}"),
                "movq {v}, %fs:({t})",
                t = out(reg) _,
                v = in(reg) v,
                options(att_syntax, nostack, preserves_flags)
            );
        }
        true
    }
}

/// The thread-local slot elsewhere, and under Miri (which runs no assembly): Rust's own
/// thread-local (no destructor, so it lives as long as the thread).
#[cfg(any(not(target_arch = "x86_64"), miri))]
mod slot {
    use core::cell::Cell;

    std::thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(0) };
    }

    /// The slot's value (0, the sentinel, once thread-local storage is gone).
    #[inline(always)]
    pub fn get() -> usize {
        SLOT.try_with(Cell::get).unwrap_or(0)
    }

    /// Sets the slot; false once thread-local storage is gone.
    #[inline(always)]
    pub fn set(v: usize) -> bool {
        SLOT.try_with(|c| c.set(v)).is_ok()
    }
}

/// The opaque id a slab keeps of its heap: the heap's distance from the sentinel, the value the
/// thread-local slot holds, so that a free compares a slab's owner with the slot without
/// turning either into an address. Never 0 for a heap of a thread (0 is the sentinel's).
#[inline(always)]
pub fn id(heap: *mut Heap) -> usize {
    // Exposed: `heap_of` turns the id back into a pointer to this heap.
    heap.expose_provenance().wrapping_sub(empty_heap().addr())
}

/// The heap an id names (the inverse of [`id`]).
#[inline(always)]
pub fn heap_of(id: usize) -> *mut Heap {
    // A heap's own allocation, not the sentinel's: the provenance `id` exposed (or, for 0,
    // the sentinel's, exposed here).
    ptr::with_exposed_provenance_mut(empty_heap().expose_provenance().wrapping_add(id))
}

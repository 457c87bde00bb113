//! Where thread heaps and messages live: pools in one piece of metadata space taken from the
//! page heap at start-up (both from its top down, so that the ones in use lie together), the
//! list of heaps whose threads have exited, behind a lock of the front end's own
//! that only thread start and exit and a thread short of messages take. Heaps and messages are
//! never unmapped, so a late free always lands in valid memory.

use super::thread_heap::{ABANDONED, Heap, RemoteMsg};
use crate::pageheap::PageHeap;
use crate::pageheap::meta::{Pool, Space};
use crate::sync::SpinLock;
use core::ptr;
use core::sync::atomic::Ordering;

/// Upper bound on heaps alive at once (threads alive at once).
pub const MAX_HEAPS: usize = 16384;

/// Upper bound on messages in existence (each 512 bytes of metadata, touched only when used).
pub const MAX_MSGS: usize = 1 << 16;

/// The metadata space the front end asks of the page heap at start-up.
pub const META_BYTES: usize = MAX_HEAPS * size_of::<Heap>() + 64 + MAX_MSGS * size_of::<RemoteMsg>();

/// The storage of heaps and messages, and the heaps of exited threads.
struct Registry {
    space: Space,
    heaps: Pool<Heap>,
    msgs: Pool<RemoteMsg>,
    /// Heaps of exited threads, waiting for a new thread to adopt them.
    abandoned: *mut Heap,
}

// SAFETY: the raw pointers refer to heaps in metadata that lives for the process; the registry
// is only reached through its lock.
unsafe impl Send for Registry {}

impl Registry {
    const fn empty() -> Self {
        Registry { space: Space::empty(), heaps: Pool::new(), msgs: Pool::new(), abandoned: ptr::null_mut() }
    }

    /// An abandoned heap if any (the last one abandoned; `false`: not fresh), else a zeroed
    /// one from the pool (`true`); null when the pool is used up or not set up.
    fn take_heap(&mut self) -> (*mut Heap, bool) {
        let h = self.abandoned;
        if !h.is_null() {
            // SAFETY: heaps on the abandoned list are live heaps no thread owns, linked
            // through `next_abandoned` by `abandon` under the registry's lock (held by the
            // caller through `&mut self`).
            self.abandoned = unsafe { (*h).next_abandoned };
            return (h, false);
        }
        // SAFETY: the space lies in mapped, zeroed metadata (`install`), the heaps' pool
        // always uses it, and a zero heap is what the caller sets up before use.
        (unsafe { self.heaps.alloc(&mut self.space) }, true)
    }

    /// An empty message (its fields are for the caller to set), or null when the space is
    /// used up or not set up.
    fn new_message(&mut self) -> *mut RemoteMsg {
        // SAFETY: the space lies in mapped, zeroed metadata, the messages' pool always uses
        // it, and a zero message is valid.
        unsafe { self.msgs.alloc(&mut self.space) }
    }

    /// Puts `heap` on the abandoned list.
    ///
    /// # Safety
    /// `heap` must be a live heap no thread uses any more (nor will until it is adopted), not
    /// on the list already.
    unsafe fn abandon(&mut self, heap: *mut Heap) {
        debug_assert!(!heap.is_null());
        // SAFETY: `heap` is a live heap that no thread uses any more (this function's
        // contract), so these writes race with nothing; the Release hands its slabs to
        // whoever claims or adopts it next, under the registry's lock (held through `&mut
        // self`).
        unsafe {
            (*heap).next_abandoned = self.abandoned;
            (*heap).state.store(ABANDONED, Ordering::Release);
        }
        self.abandoned = heap;
    }
}

static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry::empty());

/// The front end's storage, taken from the page heap's metadata space at start-up.
pub struct Storage {
    space: Space,
}

/// Takes the front end's storage from the page heap (at start-up, under its lock); `None` if
/// the metadata space is missing.
pub fn reserve(ph: &mut PageHeap) -> Option<Storage> {
    let start = ph.take_meta(META_BYTES, 64)?;
    Some(Storage { space: Space::new(start, start + META_BYTES) })
}

/// Installs the storage (at start-up, with the page heap's lock released: the fork handlers
/// take this lock first).
pub fn install(storage: Storage) {
    REGISTRY.lock().space = storage.space;
}

/// An empty message (its fields are for the caller to set), or null when the space is used
/// up or not set up.
pub fn new_message() -> *mut RemoteMsg {
    REGISTRY.lock().new_message()
}

/// A heap for a new thread: an abandoned one if any (its state is still `ABANDONED`, or
/// `CLAIMED` by a thread bringing frees home), else a fresh one from the pool (all zero, for
/// the caller to set up). Null when the pool is used up or not set up.
pub fn take_heap() -> (*mut Heap, bool) {
    REGISTRY.lock().take_heap()
}

/// Puts `heap`, which no thread owns any more, on the abandoned list.
///
/// # Safety
/// `heap` must be a live heap no thread uses any more (nor will until it is adopted).
pub unsafe fn abandon(heap: *mut Heap) {
    debug_assert!(!heap.is_null());
    // SAFETY: this function's contract is `Registry::abandon`'s.
    unsafe { REGISTRY.lock().abandon(heap) };
}

/// Bytes of the front end's metadata touched so far.
pub fn metadata_bytes() -> usize {
    REGISTRY.lock().space.touched()
}

/// Takes the front end's lock before `fork()`, so no thread is inside its bookkeeping when the
/// address space is copied.
pub fn lock_for_fork() {
    REGISTRY.raw_lock();
}

/// Releases the lock taken by [`lock_for_fork`], on either side of the fork.
///
/// # Safety
/// The calling thread must have called `lock_for_fork` (in the child: the forking thread did,
/// and it is the child's only thread).
pub unsafe fn unlock_after_fork() {
    // SAFETY: this thread took the lock in `lock_for_fork` and holds it without a guard (this
    // function's contract), so releasing it here is releasing its own lock.
    unsafe { REGISTRY.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::thread_heap::OWNED;

    /// A registry over space in `buf` (zeroed) for `heaps` heaps and `msgs` messages, its end
    /// aligned for both.
    fn registry(buf: &mut Vec<u64>, heaps: usize, msgs: usize) -> Registry {
        let bytes = heaps * size_of::<Heap>() + msgs * size_of::<RemoteMsg>();
        let align = align_of::<Heap>().max(align_of::<RemoteMsg>()).max(64);
        *buf = vec![0u64; (bytes + align).div_ceil(8)];
        let start = (buf.as_mut_ptr() as usize).next_multiple_of(align);
        Registry { space: Space::new(start, start + bytes), ..Registry::empty() }
    }

    #[test]
    fn fresh_heaps_come_from_the_pool_until_it_is_used_up() {
        let mut buf = Vec::new();
        let mut r = registry(&mut buf, 3, 0);
        let got: Vec<_> = (0..3).map(|_| r.take_heap()).collect();
        assert!(got.iter().all(|&(h, fresh)| !h.is_null() && fresh));
        assert!(got[0].0 != got[1].0 && got[1].0 != got[2].0 && got[0].0 != got[2].0);
        assert!(r.take_heap().0.is_null(), "a fourth heap from a pool of three");
        assert!(Registry::empty().take_heap().0.is_null(), "a registry not set up has no heap");
    }

    #[test]
    fn abandoned_heaps_are_adopted_last_in_first_out_before_fresh_ones() {
        let mut buf = Vec::new();
        let mut r = registry(&mut buf, 4, 0);
        let (a, b) = (r.take_heap().0, r.take_heap().0);
        // SAFETY: both are heaps of this registry that no thread uses.
        unsafe {
            (*a).state.store(OWNED, Ordering::Relaxed);
            (*b).state.store(OWNED, Ordering::Relaxed);
            r.abandon(a);
            r.abandon(b);
            assert_eq!((*a).state.load(Ordering::Relaxed), ABANDONED);
        }
        assert_eq!(r.take_heap(), (b, false));
        assert_eq!(r.take_heap(), (a, false));
        let (c, fresh) = r.take_heap();
        assert!(fresh && c != a && c != b, "the list empty, a fresh heap");
    }

    #[test]
    fn heaps_and_messages_share_one_space_from_its_top_down() {
        let mut buf = Vec::new();
        let mut r = registry(&mut buf, 1, 4);
        let (h, fresh) = r.take_heap();
        assert!(fresh && !h.is_null());
        let msgs: Vec<_> = (0..4).map(|_| r.new_message()).collect();
        assert!(msgs.iter().all(|m| !m.is_null()));
        // Each below the last: the ones in use lie together at the top.
        assert!(msgs[0] as usize + size_of::<RemoteMsg>() <= h as usize);
        assert!(msgs.windows(2).all(|w| w[1] < w[0]));
        assert!(r.new_message().is_null(), "a fifth message from space for four");
        assert!(r.take_heap().0.is_null(), "a second heap from space for one and four messages");
        assert_eq!(r.space.touched(), size_of::<Heap>() + 4 * size_of::<RemoteMsg>());
    }
}

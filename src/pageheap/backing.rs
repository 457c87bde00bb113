//! What the page heap asks of the OS under its lock, behind one narrow interface: address
//! space, commits with a page kind, giving memory back, moving held memory where it is wanted,
//! moving memory out of the hugetlb pools and into them, what the pools can give, whether THP
//! is off for the process, whether it has forked, and the clock (collapsing happens outside
//! the lock, in `collapser`). [`OsBacking`] is the real one; tests
//! put a fake in its place, so that release, decay and re-collapse are checked call by call,
//! with a hand-turned clock.

use crate::os::{mem, probe, process, thread};
use crate::pagekind::PageKind;

/// The page heap's view of the OS. Implementations must not allocate through the global
/// allocator and must not panic (they run inside `malloc`).
pub trait Backing {
    /// Reserves `len` bytes of inaccessible address space aligned to `align` (see
    /// [`mem::reserve`]).
    fn reserve(&mut self, len: usize, align: usize) -> Option<usize>;

    /// Gives back a reservation made by [`Backing::reserve`].
    ///
    /// # Safety
    /// Nothing may use any of it any more.
    unsafe fn unreserve(&mut self, base: usize, len: usize);

    /// Maps `len` bytes of zeroed metadata memory (see [`mem::map_metadata`]).
    fn map_metadata(&mut self, len: usize) -> Option<usize>;

    /// Backs `[addr, addr + len)` with pages of `kind` (see [`mem::commit`]).
    ///
    /// # Safety
    /// As for [`mem::commit`]: an unused, inaccessible part of a reservation, aligned to the
    /// kind's page.
    unsafe fn commit(&mut self, addr: usize, len: usize, kind: PageKind, no_thp: bool) -> Result<(), i32>;

    /// Asks for THP on committed 4 KiB memory (see [`mem::advise_huge`]).
    ///
    /// # Safety
    /// As for [`mem::advise_huge`].
    unsafe fn advise_thp(&mut self, addr: usize, len: usize) -> Result<(), i32>;

    /// Gives the physical memory of `[addr, addr + len)` back (see [`mem::release`]).
    ///
    /// # Safety
    /// As for [`mem::release`]: committed anonymous memory holding nothing live.
    unsafe fn release(&mut self, addr: usize, len: usize) -> bool;

    /// Moves the memory of `[from, from + len)` to `[to, to + len)` without copying or faulting
    /// it in again; `from` then reads as zero (see [`mem::move_memory`]). False, with nothing
    /// changed, when the OS cannot.
    ///
    /// # Safety
    /// As for [`mem::move_memory`].
    unsafe fn move_memory(&mut self, from: usize, to: usize, len: usize) -> bool;

    /// Maps THP memory `[addr, addr + len)` afresh, with the mapping offset of its address
    /// (see [`mem::renew_thp`]).
    ///
    /// # Safety
    /// As for [`mem::renew_thp`].
    unsafe fn renew_thp(&mut self, addr: usize, len: usize) -> mem::Renewed;

    /// Whether another process may share the heap's pages: this one has forked, or is a forked
    /// child.
    fn may_share(&self) -> bool;

    /// Replaces hugetlb memory with anonymous (THP) memory holding the same contents in the
    /// 2 MiB pieces `keep` names (see [`mem::move_to_anon`]).
    ///
    /// # Safety
    /// As for [`mem::move_to_anon`].
    unsafe fn move_to_anon(&mut self, addr: usize, len: usize, keep: &dyn Fn(usize) -> bool) -> bool;

    /// Replaces anonymous memory with 2 MiB hugetlb pages holding the same contents in the
    /// 2 MiB pieces `keep` names (see [`mem::move_to_hugetlb`]), when the calling thread is
    /// the process's only one (no other could touch the memory meanwhile); false, with nothing
    /// changed, when it is not, or the pool cannot take it.
    ///
    /// # Safety
    /// `[addr, addr + len)` is committed anonymous memory of the arena, 2 MiB aligned, that no
    /// code of the calling thread touches meanwhile (the page heap's lock is held); `keep`
    /// false only for pieces whose contents do not matter.
    unsafe fn move_to_hugetlb(&mut self, addr: usize, len: usize, keep: &dyn Fn(usize) -> bool) -> bool;

    /// Pages of a hugetlb kind a new mapping could reserve now; `None` where unknown.
    fn pool_available(&self, kind: PageKind) -> Option<usize>;

    /// As [`pool_available`](Backing::pool_available), asked around each fork of a process
    /// holding hugetlb pages, where it may keep what it reads from open (see
    /// [`probe::pool_available_kept`]).
    fn pool_available_at_fork(&self, kind: PageKind) -> Option<usize> {
        self.pool_available(kind)
    }

    /// A coarse monotonic clock, in milliseconds (wrapping).
    fn now_ms(&self) -> u32;

    /// Whether THP is switched off for this process (see [`process::thp_disabled`]).
    fn thp_disabled(&self) -> bool;

    /// The room the memory cgroup's limits leave now, bytes (0: no limit; see
    /// [`probe::OsInfo::cgroup_room`]).
    fn cgroup_room(&self) -> usize;
}

/// The OS itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsBacking;

impl Backing for OsBacking {
    fn reserve(&mut self, len: usize, align: usize) -> Option<usize> {
        mem::reserve(len, align)
    }

    unsafe fn unreserve(&mut self, base: usize, len: usize) {
        debug_assert!(base != 0 && len > 0);
        // SAFETY: a mapping `reserve` made that nothing uses any more: `unreserve`'s contract,
        // `mem::unmap`'s precondition.
        unsafe { mem::unmap(base, len) }
    }

    fn map_metadata(&mut self, len: usize) -> Option<usize> {
        mem::map_metadata(len)
    }

    unsafe fn commit(&mut self, addr: usize, len: usize, kind: PageKind, no_thp: bool) -> Result<(), i32> {
        debug_assert!(len > 0);
        // SAFETY: an unused, inaccessible part of a reservation, aligned to the kind's page:
        // `commit`'s contract, `mem::commit`'s precondition.
        unsafe { mem::commit(addr, len, kind, no_thp) }
    }

    unsafe fn advise_thp(&mut self, addr: usize, len: usize) -> Result<(), i32> {
        // SAFETY: committed memory of the arena: `advise_thp`'s contract, `mem::advise_huge`'s
        // precondition.
        unsafe { mem::advise_huge(addr, len) }
    }

    unsafe fn release(&mut self, addr: usize, len: usize) -> bool {
        debug_assert!(len > 0);
        // SAFETY: a committed anonymous part of the arena holding nothing live: `release`'s
        // contract, `mem::release`'s precondition.
        unsafe { mem::release(addr, len) }
    }

    unsafe fn move_memory(&mut self, from: usize, to: usize, len: usize) -> bool {
        // SAFETY: `move_memory`'s contract is `mem::move_memory`'s precondition, word for word.
        unsafe { mem::move_memory(from, to, len) }
    }

    unsafe fn renew_thp(&mut self, addr: usize, len: usize) -> mem::Renewed {
        // SAFETY: `renew_thp`'s contract is `mem::renew_thp`'s precondition, word for word.
        unsafe { mem::renew_thp(addr, len) }
    }

    fn may_share(&self) -> bool {
        super::fork_pages::bell().forked.load(core::sync::atomic::Ordering::Relaxed)
    }

    unsafe fn move_to_anon(&mut self, addr: usize, len: usize, keep: &dyn Fn(usize) -> bool) -> bool {
        // SAFETY: `move_to_anon`'s contract is `mem::move_to_anon`'s precondition, word for word.
        unsafe { mem::move_to_anon(addr, len, keep) }
    }

    unsafe fn move_to_hugetlb(&mut self, addr: usize, len: usize, keep: &dyn Fn(usize) -> bool) -> bool {
        // Signals blocked: a handler that reads or writes the heap could otherwise run between
        // the copy and the move, and see the old memory or lose a write.
        thread::only_thread()
            // SAFETY: the caller's contract, and this thread is the process's only one with
            // every signal blocked: nothing else touches the range meanwhile.
            && thread::with_signals_blocked(|| unsafe { mem::move_to_hugetlb(addr, len, keep) }) == Some(true)
    }

    fn pool_available(&self, kind: PageKind) -> Option<usize> {
        probe::pool_available(kind)
    }

    fn pool_available_at_fork(&self, kind: PageKind) -> Option<usize> {
        probe::pool_available_kept(kind)
    }

    fn now_ms(&self) -> u32 {
        process::now_ms()
    }

    fn cgroup_room(&self) -> usize {
        probe::cgroup_room(b"/")
    }

    fn thp_disabled(&self) -> bool {
        process::thp_disabled()
    }
}

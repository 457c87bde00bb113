//! What the page heap asks of the OS, behind one narrow interface: address space, commits
//! with a page kind, giving memory back, collapsing it into huge pages again, what the pools
//! can give, and the clock. [`OsBacking`] is the real one; tests put a fake in its place, so
//! that release, decay and re-collapse are checked call by call, with a hand-turned clock.

use crate::os::{mem, probe, process};
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
    unsafe fn commit(&mut self, addr: usize, len: usize, kind: PageKind, thp_always: bool) -> Result<(), i32>;

    /// Gives the physical memory of `[addr, addr + len)` back (see [`mem::release`]).
    ///
    /// # Safety
    /// As for [`mem::release`]: committed anonymous memory holding nothing live.
    unsafe fn release(&mut self, addr: usize, len: usize) -> bool;

    /// Asks for `[addr, addr + len)` to be collapsed into transparent huge pages again (see
    /// [`mem::collapse`]).
    fn collapse(&mut self, addr: usize, len: usize) -> bool;

    /// Pages of a hugetlb kind a new mapping could reserve now; `None` where unknown.
    fn pool_available(&self, kind: PageKind) -> Option<usize>;

    /// A coarse monotonic clock, in milliseconds (wrapping).
    fn now_ms(&self) -> u32;
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
        // SAFETY: caller's contract.
        unsafe { mem::unmap(base, len) }
    }

    fn map_metadata(&mut self, len: usize) -> Option<usize> {
        mem::map_metadata(len)
    }

    unsafe fn commit(&mut self, addr: usize, len: usize, kind: PageKind, thp_always: bool) -> Result<(), i32> {
        debug_assert!(len > 0);
        // SAFETY: caller's contract.
        unsafe { mem::commit(addr, len, kind, thp_always) }
    }

    unsafe fn release(&mut self, addr: usize, len: usize) -> bool {
        debug_assert!(len > 0);
        // SAFETY: caller's contract.
        unsafe { mem::release(addr, len) }
    }

    fn collapse(&mut self, addr: usize, len: usize) -> bool {
        mem::collapse(addr, len)
    }

    fn pool_available(&self, kind: PageKind) -> Option<usize> {
        probe::pool_available(kind)
    }

    fn now_ms(&self) -> u32 {
        process::now_ms()
    }
}

//! The process's page heap, behind the lock every slow path takes, on a page of its own (so
//! that a fork that takes the lock writes one page), with what the fork's prepare handler took
//! ([`fork_took`]), and the page heap locked for the re-collapse helper ([`helper_lock`]:
//! behind the fork gate of [`super::fork_pages`]).

use super::PageHeap;
use super::fork_pages::gate;
use crate::sync::{SpinGuard, SpinLock};
use crate::units::OS_PAGE_SIZE;
use core::ops::{Deref, DerefMut};
use core::ptr;
use core::sync::atomic::AtomicU8;

/// [`fork_took`]: the prepare handler took the page heap's lock.
pub const TOOK_HEAP: u8 = 1;
/// [`fork_took`]: the prepare handler took the thread heaps' locks (registry, shared classes).
pub const TOOK_STORAGE: u8 = 2;

/// The page heap behind its lock (`None` before start-up, or if it failed), on a page of its
/// own, so that a fork that takes the lock writes one page.
#[repr(C, align(4096))]
struct ForkPage {
    heap: SpinLock<Option<PageHeap>>,
    /// What the prepare handler took (`TOOK_*`), written only when it changes.
    took: AtomicU8,
}

const _: () = assert!(size_of::<ForkPage>() == OS_PAGE_SIZE && align_of::<ForkPage>() == OS_PAGE_SIZE);

static FORK_PAGE: ForkPage = ForkPage { heap: SpinLock::new(None), took: AtomicU8::new(0) };

/// Takes the page heap's lock.
#[inline]
pub fn lock() -> SpinGuard<'static, Option<PageHeap>> {
    FORK_PAGE.heap.lock()
}

/// The lock itself, for the fork handlers (which may hold it across `fork()`).
pub fn the_lock() -> &'static SpinLock<Option<PageHeap>> {
    &FORK_PAGE.heap
}

/// What the fork's prepare handler took (`TOOK_*`), for the parent's and the child's handlers.
pub fn fork_took() -> &'static AtomicU8 {
    &FORK_PAGE.took
}

/// The page heap, locked for the helper: the gate, then the page heap's lock (so a fork that
/// holds the gate alone finds the page heap untouched until it is done).
pub struct HelperGuard {
    // Declared first, dropped first: the page heap's lock is released before the gate.
    heap: SpinGuard<'static, Option<PageHeap>>,
    _gate: SpinGuard<'static, ()>,
}

/// Locks the page heap for the helper thread.
pub fn helper_lock() -> HelperGuard {
    let gate = gate().lock();
    HelperGuard { heap: lock(), _gate: gate }
}

impl Deref for HelperGuard {
    type Target = Option<PageHeap>;
    fn deref(&self) -> &Self::Target {
        &self.heap
    }
}

impl DerefMut for HelperGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.heap
    }
}

/// A span of its own for one block of `bytes` aligned to `align` (a power of two), from the
/// process's page heap, under its lock: the block's address, and whether its memory is known
/// to be zero. Null when there is no memory or the page heap has not started. Freed as a large
/// span (`free_span`).
pub fn alloc_block(bytes: usize, align: usize) -> (*mut u8, bool) {
    debug_assert!(align.is_power_of_two());
    let mut guard = lock();
    let Some(ph) = guard.as_mut() else {
        return (ptr::null_mut(), false);
    };
    let span = ph.alloc_span(bytes, align, false);
    if span.is_null() {
        return (ptr::null_mut(), false);
    }
    // SAFETY: span is a fresh live header.
    unsafe { ((*span).start as *mut u8, (*span).zeroed) }
}

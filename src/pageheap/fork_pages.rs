//! The words the fork handlers (`runtime.rs`) write at every fork, on a page the kernel does
//! not copy into the child (`MADV_WIPEONFORK`: the parent's stays writable, the child's starts
//! zeroed). `fork()` write-protects every other private page of the parent: each page the
//! parent writes after it costs a page fault, and a 4 KiB copy while the child lives; a page
//! written before it costs the same while an earlier child still shares it. On this page: the
//! gate that keeps the helper off the page heap during a fork ([`gate`]), the count of the
//! parent's forks that re-collapse sweeps answer for ([`fork_count`]), and the helper's
//! doorbell ([`bell`]). Every word of it is zero in a new child, which is each word's state
//! there: no fork under way, no helper.
//!
//! The helper (a thread the C library does not know) takes the gate before the page heap's
//! lock (`process_heap::helper_lock`). A process the C library counts single-threaded
//! therefore has no thread but the forking one that could touch the page heap while the
//! forking thread holds the gate; when it also has no decision to hand its child (no hugetlb
//! pages held under a copy-on-write reserve), it forks holding the gate alone, and its fork
//! writes nothing but this page. Otherwise the forking thread also takes the thread heaps'
//! lock (when other threads exist) and the page heap's, as any allocator must.
//!
//! The page is mapped at start-up ([`map_wiped_page`]); until then, and where it cannot be
//! mapped, a static one serves, and the child's handler resets its words by hand.

use super::doorbell::Doorbell;
use crate::os::mem;
use crate::sync::SpinLock;
use crate::units::OS_PAGE_SIZE;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// The words the fork handlers write at every fork. Invariant: all-zero bytes are a valid
/// value of every field (atomics and a free lock), and are each field's state in a new child.
#[repr(C, align(4096))]
pub struct WipedPage {
    gate: SpinLock<()>,
    forks: AtomicU32,
    bell: Doorbell,
}

const _: () = assert!(size_of::<WipedPage>() == OS_PAGE_SIZE);

/// The wiped page until [`map_wiped_page`] has mapped one (and where it could not).
static STATIC_WIPED: WipedPage = WipedPage { gate: SpinLock::new(()), forks: AtomicU32::new(0), bell: Doorbell::new() };

/// The process's wiped page: [`STATIC_WIPED`] or a page mapped once and never unmapped.
static WIPED: AtomicPtr<WipedPage> = AtomicPtr::new((&raw const STATIC_WIPED).cast_mut());

/// Maps the wiped page (start-up, before the page heap exists and before the fork handlers
/// are registered; nothing has used the static page's words yet). Keeps the static page if
/// the kernel cannot wipe one (before Linux 4.14).
pub fn map_wiped_page() {
    if let Some(a) = mem::map_wiped_on_fork(OS_PAGE_SIZE) {
        WIPED.store(a as *mut WipedPage, Ordering::Release);
    }
}

#[inline]
fn wiped() -> &'static WipedPage {
    let p = WIPED.load(Ordering::Acquire);
    debug_assert!(!p.is_null() && p as usize % OS_PAGE_SIZE == 0);
    // SAFETY: `WIPED` points at `STATIC_WIPED` or at a zeroed page mapped by `map_wiped_page`
    // and never unmapped; all-zero bytes are a valid `WipedPage` (its invariant), and every
    // field is an atomic or a lock, so shared references are all anyone takes.
    unsafe { &*p }
}

/// The fork gate: held by the forking thread from the prepare handler to the parent's, and by
/// the helper around each hold of the page heap's lock (`process_heap::helper_lock`).
pub fn gate() -> &'static SpinLock<()> {
    &wiped().gate
}

/// Forks the parent has made while its heap had THP (bumped by the parent's handler; the page
/// heap counts them in when the helper next takes it, see `PageHeap::count_forks`).
pub fn fork_count() -> &'static AtomicU32 {
    &wiped().forks
}

/// The process's re-collapse doorbell.
#[inline]
pub fn bell() -> &'static Doorbell {
    &wiped().bell
}

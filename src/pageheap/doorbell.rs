//! The re-collapse helper's doorbell: the futex word it sleeps on and whether it runs. The page
//! heap rings it when it has new work (`promoted`); the helper's own file
//! (`collapser`) starts the helper and waits on the word. Kept apart from both so that the page
//! heap does not depend on the helper that depends on it.

use crate::os::thread;
use core::sync::atomic::{AtomicU32, Ordering};

/// 0: the helper is not started; 1: it runs.
pub static STARTED: AtomicU32 = AtomicU32::new(0);
/// Bumped by every fork and every nudge (the futex the helper sleeps on).
pub static KICK: AtomicU32 = AtomicU32::new(0);
/// 1 when the small heap's pages were turned into THP and the helper is to collapse them,
/// started if it is not running: taken by `collapser::start_if_promoted` at the next point where
/// no allocator lock is held and no thread heap is midway through a change.
pub static PROMOTED: AtomicU32 = AtomicU32::new(0);
/// 1 while the sweep asked for by a promotion is under way: the helper does it without its
/// CPU budget's rests (at most `HUGEHEAP_HUGE_FROM` of memory, collapsed once), so that a
/// program forking soon after building its heap finds it whole.
pub static URGENT: AtomicU32 = AtomicU32::new(0);

/// The small heap's pages were turned into THP (under the page heap's lock): wakes the helper
/// if it runs, else leaves word for the allocating thread to start it once its locks are
/// released.
pub fn promoted() {
    URGENT.store(1, Ordering::Relaxed);
    if STARTED.load(Ordering::Relaxed) != 0 {
        ring();
    } else {
        PROMOTED.store(1, Ordering::Relaxed);
    }
}

/// Bumps the word and wakes whoever sleeps on it.
pub fn ring() {
    KICK.fetch_add(1, Ordering::Release);
    thread::wake(&KICK);
}
